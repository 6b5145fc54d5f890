"""Which options the shell tool lets each program take: an allow-list per program.

Each entry says which short and long options a program may be given and which of their
values are paths (checked against the workspace) or plain text (a separator, a count, a
pattern). Options that run other programs (``sort --compress-program``, ``tar
--to-command``), read lists of file names from a file (``--files0-from``, ``tar -T``) or
follow symlinks out of the workspace (``cp -L``, ``grep -R``, ``tar -h``) are left out
on purpose: an option not listed is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

# path: must lie inside the workspace; archive: a path that is not "host:file" (tar would
# reach the host over rsh); text: not a location, not checked.
ValueKind = Literal["path", "archive", "text"]
_KINDS: frozenset[str] = frozenset({"path", "archive", "text"})


@dataclass(frozen=True, slots=True)
class ProgramOptions:
    """The options one program may be given (GNU getopt conventions).

    Short options cluster (``-la``); a short option that takes a value takes the rest of
    its cluster (``-o/x``) or else the next argument (``-o /x``). Long options take their
    value after ``=`` or as the next argument; ``long_optional`` ones only after ``=``.
    Options may follow operands (GNU permutes); ``--`` ends them.

    Attributes:
        flags: short options without a value, e.g. ``"lahR"``.
        values: short options that take a value, by the kind of that value.
        long_flags: long options without a value.
        long_values: long options that take a value, by kind.
        long_optional: long options whose value is optional (``--color[=WHEN]``).
        operands: the kind of the non-option arguments.
        numbers: ``-5`` style arguments are accepted (``head -5``, ``seq -3 3``).
        bundled_first: the first argument may be a cluster without ``-`` (``tar cf x.tar``).
    """

    flags: str = ""
    values: Mapping[str, ValueKind] = field(default_factory=dict)
    long_flags: frozenset[str] = frozenset()
    long_values: Mapping[str, ValueKind] = field(default_factory=dict)
    long_optional: frozenset[str] = frozenset()
    operands: ValueKind = "path"
    numbers: bool = False
    bundled_first: bool = False

    def __post_init__(self) -> None:
        for letter in self.flags + "".join(self.values):
            if len(letter) != 1 or not letter.isalnum():
                raise ValueError(f"ProgramOptions: short option {letter!r} must be one letter")
        for kind in (*self.values.values(), *self.long_values.values(), self.operands):
            if kind not in _KINDS:
                raise ValueError(f"ProgramOptions: value kind {kind!r} is not one of {_KINDS}")

    @classmethod
    def parse(
        cls,
        short: str,
        long: str = "",
        *,
        operands: ValueKind = "path",
        numbers: bool = False,
        bundled_first: bool = False,
    ) -> ProgramOptions:
        """Options from a compact form.

        Args:
            short: flag letters and ``letter:kind`` words, e.g. ``"bdfr o:path t:text"``.
            long: words ``name`` (flag), ``name=kind`` (value), ``name?`` (optional value).
            operands: as in the class.
            numbers: as in the class.
            bundled_first: as in the class.
        """
        flags: list[str] = []
        values: dict[str, ValueKind] = {}
        for word in short.split():
            letter, colon, kind = word.partition(":")
            if colon:
                values[letter] = _kind(kind)
            else:
                flags.append(word)
        long_flags: set[str] = set()
        long_values: dict[str, ValueKind] = {}
        optional: set[str] = set()
        for word in long.split():
            name, equals, kind = word.partition("=")
            if equals:
                long_values[name] = _kind(kind)
            elif name.endswith("?"):
                optional.add(name[:-1])
            else:
                long_flags.add(name)
        return cls(
            flags="".join(flags),
            values=values,
            long_flags=frozenset(long_flags),
            long_values=long_values,
            long_optional=frozenset(optional),
            operands=operands,
            numbers=numbers,
            bundled_first=bundled_first,
        )

    def summary(self) -> str:
        """The allowed options in one line, as an error message shows them."""
        short = [f"-{c}" for c in self.flags]
        short += [f"-{c} {kind.upper()}" for c, kind in self.values.items()]
        long = sorted(self.long_flags) + [f"{n}={k.upper()}" for n, k in self.long_values.items()]
        long += [f"{n}[=TEXT]" for n in sorted(self.long_optional)]
        return " ".join(short + [f"--{n}" for n in long]) or "(none)"


def _kind(word: str) -> ValueKind:
    if word not in _KINDS:
        raise ValueError(f"ProgramOptions: value kind {word!r} is not one of {sorted(_KINDS)}")
    return word  # type: ignore[return-value]


_P = ProgramOptions.parse

# GNU coreutils, grep and tar. Only options whose behaviour stays inside the workspace.
BUILT_IN: Mapping[str, ProgramOptions] = {
    "cat": _P(
        "AbeEnstTuv",
        "show-all number-nonblank show-ends number squeeze-blank show-tabs show-nonprinting",
    ),
    "cp": _P(
        "abdfHilnPprRsuvxT S:text t:path",
        "archive attributes-only force interactive link no-dereference no-clobber "
        "no-target-directory parents recursive remove-destination strip-trailing-slashes "
        "symbolic-link verbose one-file-system suffix=text target-directory=path "
        "no-preserve=text sparse=text backup? preserve? update? reflink?",
    ),
    "cut": _P(
        "nsz b:text c:text d:text f:text",
        "bytes=text characters=text delimiter=text fields=text output-delimiter=text "
        "complement only-delimited zero-terminated",
    ),
    "echo": _P("neE", operands="text"),
    "grep": _P(
        "EFGPiyvwxcLloqsbHhnTZzaIrU e:text f:path m:text A:text B:text C:text d:text D:text",
        "extended-regexp fixed-strings basic-regexp perl-regexp ignore-case "
        "no-ignore-case word-regexp line-regexp null-data no-messages invert-match "
        "byte-offset line-number line-buffered with-filename no-filename "
        "only-matching quiet silent text recursive files-without-match "
        "files-with-matches count initial-tab null regexp=text file=path "
        "max-count=text label=text binary-files=text directories=text devices=text "
        "include=text exclude=text exclude-from=path exclude-dir=text "
        "before-context=text after-context=text context=text color? colour?",
        numbers=True,
    ),
    "head": _P(
        "qvz c:text n:text",
        "bytes=text lines=text quiet silent verbose zero-terminated",
        numbers=True,
    ),
    "ls": _P(
        "aAbBcCdDfFgGhHiklmnNopqQrRsStuUvxXZ1 I:text T:text w:text",
        "all almost-all author escape ignore-backups directory dired file-type "
        "full-time group-directories-first no-group human-readable si "
        "dereference-command-line dereference-command-line-symlink-to-dir inode "
        "kibibytes numeric-uid-gid literal hide-control-chars show-control-chars "
        "quote-name reverse recursive size context zero block-size=text format=text "
        "hide=text ignore=text indicator-style=text quoting-style=text sort=text "
        "time=text time-style=text tabsize=text width=text color? classify? hyperlink?",
    ),
    "mkdir": _P("pv m:text", "parents verbose mode=text"),
    "mv": _P(
        "bfinuvT S:text t:path",
        "force interactive no-clobber strip-trailing-slashes no-target-directory "
        "verbose suffix=text target-directory=path backup? update?",
    ),
    "pwd": _P("LP"),
    "rm": _P("fiIrRdv", "force recursive dir verbose one-file-system interactive?"),
    "seq": _P(
        "w f:text s:text", "equal-width format=text separator=text", operands="text", numbers=True
    ),
    "sleep": _P("", operands="text"),
    "sort": _P(
        "bdfghiMnRrVcCmsuz k:text o:path S:text t:text T:path",
        "ignore-leading-blanks dictionary-order ignore-case general-numeric-sort "
        "ignore-nonprinting month-sort human-numeric-sort numeric-sort random-sort "
        "reverse version-sort debug merge stable unique zero-terminated "
        "random-source=path sort=text batch-size=text key=text output=path "
        "buffer-size=text field-separator=text temporary-directory=path "
        "parallel=text check?",
    ),
    "tail": _P(
        "fFqvz c:text n:text s:text",
        "bytes=text lines=text sleep-interval=text pid=text max-unchanged-stats=text "
        "retry quiet silent verbose zero-terminated follow?",
        numbers=True,
    ),
    "tar": _P(
        "AcdrtuxaBiGjJkmMoOpRsSUvWzZ b:text C:path f:archive H:text K:text N:path "
        "V:text X:path g:path",
        "create extract get list append update diff compare catenate concatenate "
        "verbose gzip bzip2 xz zstd auto-compress keep-old-files keep-newer-files "
        "skip-old-files overwrite preserve-permissions same-permissions no-same-owner "
        "no-same-permissions to-stdout touch sparse ignore-zeros numeric-owner "
        "unlink-first recursion no-recursion wildcards no-wildcards anchored "
        "no-anchored force-local file=archive directory=path exclude=text "
        "exclude-from=path format=text owner=text group=text mode=text mtime=text "
        "transform=text xform=text strip-components=text listed-incremental=path "
        "label=text blocking-factor=text",
        bundled_first=True,
    ),
    "touch": _P(
        "acmh d:text r:path t:text", "no-create no-dereference date=text reference=path time=text"
    ),
    "uniq": _P(
        "cdDiuz f:text s:text w:text",
        "count repeated ignore-case unique zero-terminated skip-fields=text "
        "skip-chars=text check-chars=text all-repeated? group?",
    ),
    "wc": _P("cmlLw", "bytes chars lines max-line-length words total=text"),
}
