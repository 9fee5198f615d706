"""The reward-collapse paper's StackExchange evidence (Section 5.1, Fig. 1): rankings of answers.

``HuggingFaceH4/stack-exchange-preferences`` holds Stack Exchange questions with their answers and
each answer's ``pm_score`` (a vote-based score, ties frequent). The paper took questions with
exactly 5 answers, 128 of them, and all 10 pairs of each. :class:`StackExchangeRankingSource` builds
those ranking rows: the question (HTML stripped) is the prompt, its answers (HTML stripped) the
completions, best first by ``pm_score``.

**Ties.** A pair with tied scores states no preference. ``ties="break"`` keeps the question and
orders its answers by ``pm_score`` descending, then the accepted (``selected``) answer first, then
the earlier answer (lower ``answer_id``) first: :func:`answer_order`. ``ties="drop"`` keeps only
questions whose answers' scores are all distinct. Either way the tied pairs are counted.

**Openness.** Stack Exchange questions carry no open/closed label, so every row gets one
``openness`` (default 1.0, *open*: a question that draws several answers of graded quality, none
of them the single right one). The collapse metrics then report the ``open_*`` values only, and a
prompt-aware utility (``utility=adaptive``) uses its open branch for every prompt.

**Counts.** ``stats`` (a dict of numbers, filled by ``load()``) says how many questions were seen,
had exactly ``num_answers`` answers, had tied scores, were dropped and why, and were kept; the
reward stage writes them to the run's metrics as ``rm/data/stack_exchange/<name>``, and ``load()``
prints them on one line.

**Rows that fit.** Given a fit check (``fit_rows_to``, from the data module), a question whose
answers become one input after ``model.max_length`` tokens (a long question leaves too little room
for long answers to differ) is skipped like one with unusable text, the next candidate taken in its
place, and counted (``rows_dropped_too_long``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from rcollapse.data.hub_access import (
    DATASET_PATH_KEY,
    DataUnavailableError,
    data_unavailable_message,
    require_hub_or_local,
)
from rcollapse.data.ranking_rows import (
    MalformedRowError,
    RankingRow,
    validate_ranking_row,
    validate_rows,
)
from rcollapse.runs.atomic_files import write_json_atomic

HUB_NAME = "HuggingFaceH4/stack-exchange-preferences"
OFFLINE_ALTERNATIVE = "dataset=stack_exchange_offline"
TIES = ("break", "drop")
COLUMNS = ("qid", "question", "answers")  # read by name; others (date, metadata, ...) are ignored
ANSWER_FIELDS = ("answer_id", "pm_score", "selected", "text")
# Bump when the construction changes, so that cached rows built the old way are not reused.
CACHE_VERSION = 2
SCAN_BATCH = 4096

# Tags after which text continues as a new block (a space in the plain text).
_BLOCK_TAGS = frozenset(
    "p div br hr li ul ol pre blockquote h1 h2 h3 h4 h5 h6 table tr td th dl dt dd".split()
)
_SKIPPED_TAGS = frozenset(("script", "style"))


class _TextExtractor(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)  # entities (&amp;, &#39;, ...) arrive unescaped
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in _SKIPPED_TAGS:
            self.skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_startendtag(self, tag, attrs):
        if tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in _SKIPPED_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Plain text of Stack Exchange HTML: tags removed (the text of ``<code>``/``<pre>`` kept,
    ``<script>``/``<style>`` dropped), entities unescaped, block tags turned into a space, and
    every run of whitespace collapsed to one space."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    return " ".join("".join(parser.parts).split())


def tied_pairs(scores: Sequence[int]) -> int:
    """The number of pairs ``i < j`` whose scores are equal."""
    _, counts = np.unique(np.asarray(scores), return_counts=True)
    return int(sum(c * (c - 1) // 2 for c in counts.tolist()))


def answer_order(answers: Sequence[Mapping]) -> list[int]:
    """Indices of ``answers`` best first: ``pm_score`` descending; among equal scores the accepted
    (``selected``) answer first, then the earlier answer (lower ``answer_id``)."""
    return sorted(range(len(answers)), key=lambda k: (-int(answers[k]["pm_score"]), not answers[k]["selected"],
                                                      int(answers[k]["answer_id"])))


def _empty_stats() -> dict[str, int]:
    return {
        "questions_seen": 0,            # rows read
        "questions_with_n_answers": 0,  # of them, with exactly num_answers answers
        "questions_with_ties": 0,       # of those, with at least one tied pair of scores
        "tied_pairs": 0,                # tied pairs in the questions with num_answers answers
        "questions_dropped_ties": 0,    # ties="drop": the questions with ties
        "questions_dropped_text": 0,    # examined, dropped: empty or duplicate text once stripped
        "rows_dropped_too_long": 0,     # examined, dropped: answers identical after model.max_length tokens
        "questions_kept": 0,            # train + test
        "train_prompts": 0,
        "test_prompts": 0,
        "tied_pairs_broken": 0,         # ties="break": tied pairs of the kept questions, ordered by the rule
    }


class StackExchangeRankingSource:
    """Ranking rows from ``HuggingFaceH4/stack-exchange-preferences`` (hub name or local copy).

    ``path`` goes to ``datasets.load_dataset(path, data_dir=data_dir, split=split)``: the hub
    name, or a local directory holding the hub repo's files in the same layout (``README.md``,
    ``data/<site>/train-*.parquet``, ``<site>`` the site's domain: ``data/apple.stackexchange.com``,
    ``data/askubuntu.com``, ...). ``data_dir="data/<site>"`` reads one site; ``None`` reads
    every site (about 22 GB, warned). Columns ``qid``, ``question`` and ``answers`` are selected by
    name; others are ignored.

    Questions with exactly ``num_answers`` answers (and, with ``ties="drop"``, all scores
    distinct) are the candidates; a seeded permutation (``seed``) orders them, and train takes the
    first ``num_prompts`` usable ones, test the next ``num_test``. A question whose prompt or an
    answer is empty once stripped of HTML, or two of whose answers have the same text, is skipped
    and counted. ``max_chars`` cuts each answer's plain text to that many characters (``None``:
    no cut). Every row gets ``openness`` (module docstring). With ``cache_dir`` the built rows and
    the counts are written there as JSON, keyed by the arguments (and, for a local copy, its
    parquet files' names, sizes and times), and reused. ``path_key`` is the config key named in
    the offline error (where a local copy goes).
    """

    stats_name = "stack_exchange"  # the reward stage's metrics: rm/data/<stats_name>/<count>

    def __init__(
        self,
        path: str = HUB_NAME,
        data_dir: str | None = "data/apple.stackexchange.com",
        num_answers: int = 5,
        num_prompts: int = 128,
        num_test: int = 16,
        ties: str = "break",
        seed: int = 0,
        max_chars: int | None = None,
        openness: float = 1.0,
        split: str = "train",
        cache_dir: str | None = None,
        path_key: str = DATASET_PATH_KEY,
        alternative: str | None = OFFLINE_ALTERNATIVE,
    ):
        if ties not in TIES:
            raise ValueError(f"dataset.ties={ties!r}: must be one of {list(TIES)} (break: order tied answers by the "
                             "documented rule; drop: keep only questions whose scores are all distinct)")
        if int(num_answers) < 2:
            raise ValueError(f"dataset.num_answers={num_answers}: a ranking needs at least 2 answers")
        if int(num_prompts) < 1 or int(num_test) < 1:
            raise ValueError(f"dataset.num_prompts and dataset.num_test must be >= 1, got {num_prompts} and {num_test}")
        if max_chars is not None and int(max_chars) < 1:
            raise ValueError(f"dataset.max_chars={max_chars}: must be a positive number of characters or null")
        if not -1.0 <= float(openness) <= 1.0:
            raise ValueError(f"dataset.openness={openness}: must lie in [-1, 1]")
        self.path = str(path)
        self.data_dir = str(data_dir).strip("/") if data_dir else None
        self.num_answers, self.num_prompts, self.num_test = int(num_answers), int(num_prompts), int(num_test)
        self.ties, self.seed = ties, int(seed)
        self.max_chars = int(max_chars) if max_chars is not None else None
        self.openness, self.split = float(openness), split
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.path_key, self.alternative = path_key, alternative
        self.stats: dict[str, int] = {}
        self.fit = None

    def fit_rows_to(self, fit) -> None:
        """Build only rows for which ``fit(row)`` is true (the data module's RowFit)."""
        self.fit = fit

    # ---- loading the table -----------------------------------------------------------------------

    def _where(self) -> str:
        return f"{self.path} ({self.path_key}, dataset.data_dir={self.data_dir!r})"

    def _site_hint(self, message: str) -> str:
        """The offline advice, its download command narrowed to the one site's folder."""
        if not self.data_dir:
            return message
        return message.replace(" --local-dir ", f" --include '{self.data_dir}/*' README.md --local-dir ", 1)

    def _unavailable(self, cause: str) -> DataUnavailableError:
        return DataUnavailableError(self._site_hint(
            data_unavailable_message(self.path, self.path_key, cause, alternative=self.alternative)))

    def _load_dataset(self):
        import datasets

        try:
            source = require_hub_or_local(self.path, self.path_key, alternative=self.alternative)
        except DataUnavailableError as err:
            raise DataUnavailableError(self._site_hint(str(err))) from None  # the same error, one site named
        if self.data_dir is None:
            warnings.warn(f"{self.path}: dataset.data_dir is null, so every site is read (about 22 GB for the hub "
                          "data set); set dataset.data_dir=data/<site> (the site's domain, e.g. data/askubuntu.com) to read one", stacklevel=2)
        elif Path(source).is_dir() and not (Path(source) / self.data_dir).is_dir():
            raise self._unavailable(f"the local copy has no folder {self.data_dir!r} (dataset.data_dir); its sites are "
                                    f"{sorted(p.name for p in (Path(source) / 'data').glob('*') if p.is_dir())}")
        try:
            return datasets.load_dataset(source, data_dir=self.data_dir, split=self.split)
        except (ConnectionError, OSError) as err:
            first_line = (str(err).strip().splitlines() or [""])[0]
            raise self._unavailable(f"{type(err).__name__}: {first_line}") from err

    def _fingerprint(self) -> list:
        """The local copy's parquet files (name, size, mtime), so that a changed copy is rebuilt."""
        root = Path(self.path).expanduser()
        if not root.is_dir():
            return []
        folder = root / self.data_dir if self.data_dir else root
        return [[str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns]
                for f in sorted(folder.rglob("*.parquet"))]

    # ---- selection -------------------------------------------------------------------------------

    def _fail(self, qid, row: int, problem: str) -> MalformedRowError:
        return MalformedRowError(f"{self._where()}: question qid {qid} (row {row}): {problem}")

    def _scan(self, dataset, stats: dict[str, int]) -> list[int]:
        """Row numbers of the candidate questions; checks their answers' scores; fills the counts."""
        import pyarrow as pa
        import pyarrow.compute as pc

        n = self.num_answers
        table = dataset.with_format("arrow")
        candidates: list[int] = []
        for start in range(0, len(dataset), SCAN_BATCH):
            batch = table[start:start + SCAN_BATCH]
            stats["questions_seen"] += batch.num_rows
            answers = batch.column("answers")
            if not pa.types.is_list(answers.type) and not pa.types.is_large_list(answers.type):
                raise MalformedRowError(f"{self._where()}: column 'answers' must be a list of answers, "
                                        f"got {answers.type}")
            lengths = pc.fill_null(pc.list_value_length(answers), -1).to_numpy()
            rows = np.nonzero(lengths == n)[0]
            if rows.size == 0:
                continue
            chosen = batch.take(pa.array(rows))
            qids = chosen.column("qid").to_pylist()
            flat = pa.concat_arrays(pc.list_flatten(chosen.column("answers")).chunks)
            names = [flat.type.field(i).name for i in range(flat.type.num_fields)]
            for field in ANSWER_FIELDS:
                if field not in names:
                    raise self._fail(qids[0], start + int(rows[0]), f"the answers have no field {field!r} (they "
                                     f"have {names}); every answer needs {list(ANSWER_FIELDS)}")
            values = {f: flat.field(f).to_pylist() for f in ("answer_id", "pm_score", "selected")}
            for q, row in enumerate(rows.tolist()):
                where = start + row
                if qids[q] is None:
                    raise self._fail(None, where, "'qid' is missing (null)")
                for field, column in values.items():
                    for k in range(n):
                        if column[q * n + k] is None:
                            raise self._fail(qids[q], where, f"answers[{k}].{field} is missing (null)")
                ties = tied_pairs(values["pm_score"][q * n:(q + 1) * n])
                stats["questions_with_n_answers"] += 1
                stats["tied_pairs"] += ties
                stats["questions_with_ties"] += ties > 0
                if ties and self.ties == "drop":
                    stats["questions_dropped_ties"] += 1
                    continue
                candidates.append(where)
        return candidates

    def _row(self, raw: Mapping, where: int) -> tuple[dict, int] | None:
        """The raw ranking row of one candidate and its number of tied pairs, or None when its
        text is unusable (an empty prompt or answer once stripped, or two answers alike)."""
        qid, answers = raw.get("qid"), raw.get("answers")
        question = raw.get("question")
        if not isinstance(question, str):
            raise self._fail(qid, where, f"'question' must be a string (HTML), got {type(question).__name__}")
        for k, answer in enumerate(answers):
            if not isinstance(answer, Mapping) or not isinstance(answer.get("text"), str):
                raise self._fail(qid, where, f"answers[{k}].text must be a string (HTML), got "
                                 f"{type(answer.get('text') if isinstance(answer, Mapping) else answer).__name__}")
        order = answer_order(answers)
        texts = [html_to_text(answers[k]["text"]) for k in order]
        if self.max_chars is not None:
            texts = [t[: self.max_chars].rstrip() for t in texts]
        prompt = html_to_text(question)
        if not prompt or not all(texts) or len(set(texts)) < len(texts):
            return None
        row = {"id": f"stack_exchange-q{qid}-r{where}", "prompt": prompt, "completions": texts,
               "openness": self.openness}
        return row, tied_pairs([a["pm_score"] for a in answers])

    def _build(self) -> tuple[dict[str, list[RankingRow]], dict[str, int]]:
        dataset = self._load_dataset()
        missing = [c for c in COLUMNS if c not in dataset.column_names]
        if missing:
            raise MalformedRowError(f"{self._where()}: missing column(s) {missing}; found {dataset.column_names} "
                                    "(the hub data set has qid, question, date, metadata, answers)")
        dataset = dataset.select_columns(list(COLUMNS))
        stats = _empty_stats()
        candidates = self._scan(dataset, stats)
        wanted = self.num_prompts + self.num_test
        raws, broken = [], 0
        for index in np.random.default_rng(self.seed).permutation(len(candidates)).tolist():
            where = candidates[index]
            built = self._row(dataset[where], where)
            if built is None:
                stats["questions_dropped_text"] += 1
                continue
            if self.fit is not None and not self.fit(validate_ranking_row(built[0], where, self._where())):
                stats["rows_dropped_too_long"] += 1
                continue
            raws.append(built[0])
            broken += built[1]
            if len(raws) == wanted:
                break
        if len(raws) < wanted:
            raise ValueError(
                f"{self._where()}: only {len(raws)} usable questions with exactly {self.num_answers} answers "
                f"(dataset.ties={self.ties}; counts: {stats}); dataset.num_prompts={self.num_prompts} + "
                f"dataset.num_test={self.num_test} needs more: choose a larger site (dataset.data_dir), "
                "dataset.ties=break, or fewer prompts (dataset.num_prompts)")
        rows = validate_rows(raws, source=f"{self.path}:{self.data_dir}")
        stats.update(questions_kept=wanted, train_prompts=self.num_prompts, test_prompts=self.num_test,
                     tied_pairs_broken=broken if self.ties == "break" else 0)
        return {"train": rows[: self.num_prompts], "test": rows[self.num_prompts:]}, stats

    # ---- cache and the source interface ----------------------------------------------------------

    def cache_file(self) -> Path | None:
        """The JSON file of the cache (rows and counts), or None without ``cache_dir``."""
        if self.cache_dir is None:
            return None
        key = json.dumps([CACHE_VERSION, self.path, self.data_dir, self.split, self.num_answers, self.num_prompts,
                          self.num_test, self.ties, self.seed, self.max_chars, self.openness, self._fingerprint(),
                          self.fit.key if self.fit is not None else None])
        return self.cache_dir / f"stack_exchange-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"

    def _write_cache(self, data: dict[str, list[RankingRow]], stats: dict[str, int], file: Path) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        payload = {"stats": stats, **{split: [{"id": r.row_id, "prompt": r.prompt, "completions": list(r.completions),
                                                "openness": r.openness} for r in rows]
                                       for split, rows in data.items()}}
        write_json_atomic(file, payload, ensure_ascii=False)

    def _read_cache(self, file: Path) -> tuple[dict[str, list[RankingRow]], dict[str, int]]:
        payload = json.loads(file.read_text(encoding="utf-8"))
        data = {split: validate_rows(payload[split], source=str(file)) for split in ("train", "test")}
        return data, {k: int(v) for k, v in payload["stats"].items()}

    def prepare(self) -> None:
        """Build and cache the rows if the cache lacks them (a data module's ``prepare_data``)."""
        file = self.cache_file()
        if file is not None and not file.exists():
            self._write_cache(*self._build(), file)

    def load(self) -> dict[str, list[RankingRow]]:
        file = self.cache_file()
        if file is not None and file.exists():
            data, stats = self._read_cache(file)
        else:
            data, stats = self._build()
            if file is not None:
                self._write_cache(data, stats, file)
        self.stats = stats
        print(self.summary())
        return data

    def summary(self) -> str:
        """One line of the counts of the last ``load()``."""
        s = self.stats
        if self.ties == "break":
            handled = f"{s['tied_pairs_broken']} tied pairs in the kept ones ordered by the rule (accepted, then earlier)"
        else:
            handled = f"{s['questions_dropped_ties']} questions with ties dropped"
        return (f"stack_exchange {self.data_dir or 'all sites'}: {s['questions_seen']} questions seen, "
                f"{s['questions_with_n_answers']} with exactly {self.num_answers} answers "
                f"({s['tied_pairs']} tied pairs in {s['questions_with_ties']} of them; ties={self.ties}: {handled}), "
                f"{s['questions_dropped_text']} skipped for empty/duplicate text, {s.get('rows_dropped_too_long', 0)} "
                f"as too long for model.max_length, kept {s['questions_kept']} "
                f"({s['train_prompts']} train + {s['test_prompts']} test)")


class StackExchangeOfflineSource(StackExchangeRankingSource):
    """:class:`StackExchangeRankingSource` on a generated local copy, written on first use.

    If ``path`` does not exist, :func:`rcollapse.data.synthetic_stack_exchange.write_stack_exchange_copy`
    writes a copy there (``copy_sites``, ``copy_questions`` per site, ``copy_seed``), in the hub
    repo's layout, with a marker file ``.rcollapse_copy.json`` holding those arguments; a copy with
    other arguments is written anew. A directory without the marker (e.g. a real copy) is read as
    it is and never written to. Every other argument is the real loader's.
    """

    MARKER = ".rcollapse_copy.json"

    def __init__(self, path: str, copy_sites: Sequence[str] = ("apple",), copy_questions: int = 600,
                 copy_seed: int = 0, **kwargs):
        super().__init__(path=path, **kwargs)
        self.copy_sites = [str(s) for s in copy_sites]
        self.copy_questions, self.copy_seed = int(copy_questions), int(copy_seed)

    def _copy_args(self) -> dict:
        return {"sites": self.copy_sites, "num_questions": self.copy_questions, "seed": self.copy_seed}

    def ensure_copy(self) -> Path:
        """The local copy's directory, written first if it is missing or was written with other
        arguments (atomically: a sibling directory renamed into place)."""
        from rcollapse.data.synthetic_stack_exchange import write_stack_exchange_copy

        root = Path(self.path).expanduser()
        marker = root / self.MARKER
        if root.is_dir() and (not marker.exists() or json.loads(marker.read_text()) == self._copy_args()):
            return root
        tmp = root.with_name(f".{root.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        write_stack_exchange_copy(tmp, **self._copy_args())
        (tmp / self.MARKER).write_text(json.dumps(self._copy_args()))
        old = root.with_name(f".{root.name}.old-{os.getpid()}")
        if root.is_dir():
            root.rename(old)
        try:
            tmp.rename(root)
        except OSError:  # another process put its copy there first: same arguments, same files
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        print(f"stack_exchange_offline: wrote a generated local copy to {root} ({self._copy_args()})")
        return root

    def prepare(self) -> None:
        self.ensure_copy()
        super().prepare()

    def load(self) -> dict[str, list[RankingRow]]:
        self.ensure_copy()
        return super().load()
