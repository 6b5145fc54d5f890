"""Named replay workloads: traces built for one question, with the settings that ask it."""
