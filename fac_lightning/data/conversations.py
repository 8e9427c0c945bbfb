"""Chat conversations from a local mirror file or a hub data set.

A conversation is a list of ``{"role": "user" | "assistant", "content": str}`` messages. Each source names both a
hub id and a path inside the local mirror (``paths.data_dir``); the mirror is checked first, so offline machines
and CI never touch the hub.
"""

import logging
import os
import re
import zlib
from pathlib import Path

from fac_lightning.config import SourceConfig
from fac_lightning.data.ab_items import ab_problem
from fac_lightning.data.examples import Conversation, Example
from fac_lightning.files import DataError, read_rows

log = logging.getLogger(__name__)

_DEFAULT_FIELD = {"messages": "messages", "hh_transcript": "chosen", "instruction_output": "instruction", "prompt": "prompt",
                  "preference": "chosen", "ab_item": "answer_matching_behavior"}
_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def parse_hh_transcript(text: str) -> Conversation:
    """Split an HH-RLHF "\\n\\nHuman: ... \\n\\nAssistant: ..." transcript into messages."""
    parts = _HH_TURN.split(text)
    messages = []
    for speaker, content in zip(parts[1::2], parts[2::2]):
        role = "user" if speaker == "Human" else "assistant"
        content = content.strip()
        if messages and messages[-1]["role"] == role:  # rare doubled speaker: merge
            messages[-1]["content"] += "\n\n" + content
        elif content or role == "user":
            messages.append({"role": role, "content": content})
    return messages


def row_to_conversation(row: dict, source: SourceConfig, field: str | None = None) -> Conversation:
    """Convert one raw row to a conversation (from ``field``, default the source's), raising ``KeyError`` /
    ``TypeError`` on a malformed row."""
    field = field or source.field or _DEFAULT_FIELD[source.format]
    if source.format == "messages":
        return [{"role": m["role"], "content": str(m["content"])} for m in row[field] if m["role"] != "system"]
    if source.format == "preference":  # TRL's conversational preference row: the prompt's messages, then the answer
        return [{"role": m["role"], "content": str(m["content"])} for m in [*row["prompt"], *row[field]]
                if m["role"] != "system"]
    if source.format == "hh_transcript":
        return parse_hh_transcript(row[field])
    if source.format == "instruction_output":
        extra = field_value(row, source.input_field) if source.input_field else None
        instruction = str(row[field]) + (f"\n\n{extra}" if extra else "")
        messages = [{"role": "user", "content": instruction}]
        response = field_value(row, source.response_field or "output")
        if response is None:
            raise KeyError(source.response_field or "output")
        if response:
            messages.append({"role": "assistant", "content": str(response)})
        return messages
    if source.format == "prompt":
        return [{"role": "user", "content": str(row[field])}]
    if source.format == "ab_item":  # the question (with its choices), answered with the letter in ``field``
        if not isinstance(row["question"], str) or not isinstance(row[field], str):
            raise TypeError(f"'question' and {field!r} must be text")
        return [{"role": "user", "content": row["question"]}, {"role": "assistant", "content": row[field]}]
    raise DataError(f"source {source.name!r}: unknown format {format_name(source)!r} "
                    f"(choose from {sorted(_DEFAULT_FIELD)})")


def format_name(source: SourceConfig) -> str:
    return getattr(source.format, "value", source.format)


def infer_source(path: str | Path) -> SourceConfig:
    """A SourceConfig for a data file whose format is told by its first row's fields."""
    row = next(read_rows(Path(path)), None)
    if row is None:
        raise DataError(f"{path}: no rows")
    if isinstance(row.get("prompt"), list) and isinstance(row.get("chosen"), list):  # preference_pair rows
        return SourceConfig(name=Path(path).name, format="preference", field="chosen", rejected_field="rejected",
                            local_path=str(Path(path).resolve()))
    for key, fmt, response in (("messages", "messages", None), ("text", "prompt", None), ("prompt", "prompt", None),
                               ("instruction", "instruction_output", "output"), ("chosen", "hh_transcript", None),
                               ("question", "prompt", None)):
        if key in row:
            if fmt == "instruction_output" and "output" not in row:
                fmt = "prompt"
            return SourceConfig(name=Path(path).name, format=fmt, field=key, response_field=response,
                                local_path=str(Path(path).resolve()))
    raise DataError(f"{path}: row 1 has none of the fields messages/text/prompt/instruction/chosen/question "
                    f"(it has {sorted(row)})")


def field_value(row: dict, path: str):
    """``row``'s value at a dotted path (``annotations.toxicity.majority_human``, ``instances.0.output``: a number
    indexes a list); None where it is absent."""
    for key in path.split("."):
        if isinstance(row, list) and key.isdigit():
            row = row[int(key)] if int(key) < len(row) else None
        elif isinstance(row, dict):
            row = row.get(key)
        else:
            return None
    return row


def local_file(source: SourceConfig, data_dir: str | Path) -> Path | None:
    """The source's file in the mirror (an absolute local_path ignores data_dir), or None if it names none."""
    return Path(data_dir) / source.local_path if source.local_path else None


def source_origin(source: SourceConfig, data_dir: str | Path) -> str:
    """Where a source's rows come from: its local mirror file if present (or if it names no hub id), else the hub."""
    path = local_file(source, data_dir)
    if path is not None and (path.exists() or not source.hub_id):
        return str(path)
    if not source.hub_id:
        raise DataError(f"source {source.name!r} names neither local_path nor hub_id")
    return f"hub:{source.hub_id}"


def unreachable(source: SourceConfig, data_dir: str | Path, error: Exception) -> DataError:
    """The error for a source found neither in the mirror nor on the hub: it names both places."""
    path = local_file(source, data_dir)
    local = (f"not in the local mirror (looked for {path}; the mirror is paths.data_dir={data_dir}, set by "
             f"FAC_DATA_DIR)" if path is not None else "names no local_path")
    hub = ", ".join(f"{k} {v}" for k, v in (("config", source.hub_config), ("data_dir", source.hub_data_dir),
                                             ("split", source.split)) if v)
    return DataError(f"source {source.name!r}: {local}, and the hub copy {source.hub_id} ({hub}) could not be "
                     f"loaded: {type(error).__name__}: {error}. With the data set in your Hugging Face cache, set "
                     f"HF_HUB_OFFLINE=1 to read it from there.")


def check_hub(source: SourceConfig, data_dir: str | Path) -> None:
    """Fail at once, naming the local path and the hub id, when the hub cannot be asked about the source's data set
    (instead of the data set loader's half minute of retries). Skipped with ``HF_HUB_OFFLINE`` set."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        return
    from huggingface_hub import HfApi

    try:
        HfApi().dataset_info(source.hub_id, timeout=10)
    except Exception as e:  # noqa: BLE001 (offline, unknown id, refused, timed out: each is named)
        raise unreachable(source, data_dir, e) from None


def check_source(source: SourceConfig, data_dir: str | Path) -> None:
    """That the source's rows can be read (its mirror file exists, or the hub answers), without reading them."""
    if source_origin(source, data_dir).startswith("hub:"):
        check_hub(source, data_dir)


def load_rows(source: SourceConfig, data_dir: str | Path) -> tuple[list[dict], str]:
    """Raw rows of a source (``where`` filtered, then skip_rows / max_rows) and where they came from."""
    origin = source_origin(source, data_dir)
    if not origin.startswith("hub:"):
        rows = list(read_rows(Path(origin)))
    else:
        import datasets

        check_hub(source, data_dir)
        try:
            rows = list(datasets.load_dataset(source.hub_id, source.hub_config, data_dir=source.hub_data_dir,
                                              split=source.split))
        except (ConnectionError, OSError) as e:
            raise unreachable(source, data_dir, e) from e
    read = len(rows)
    if source.where:
        rows = [r for r in rows if all(str(field_value(r, k)) == str(v) for k, v in source.where.items())]
    if source.hash_buckets:
        field = source.field or _DEFAULT_FIELD[format_name(source)]
        rows = [r for r in rows if in_hash_bucket(str(field_value(r, field)), source)]
    kept = rows[source.skip_rows :][: source.max_rows]
    if not kept:  # an empty file, a filter that matches nothing or a skip past the end: never a silent empty set
        where = f", {len(rows)} match where={dict(source.where)}" if source.where else ""
        where += f", hash bucket {source.hash_bucket} of {source.hash_buckets}" if source.hash_buckets else ""
        raise DataError(f"{origin}: source {source.name!r} has no rows to use ({read} read{where}, "
                        f"skip_rows={source.skip_rows}, max_rows={source.max_rows})")
    return kept, origin


def in_hash_bucket(text: str, source: SourceConfig) -> bool:
    return zlib.crc32(text.encode()) % source.hash_buckets == source.hash_bucket


def pair_problem(chosen: Conversation, rejected: Conversation) -> str | None:
    """Why two conversations are not a preference pair (strict user/assistant alternation ending in an assistant
    turn, the same turns and history, different final answers), or None."""
    for turns in (chosen, rejected):
        roles = [m["role"] for m in turns]
        if not roles or roles[-1] != "assistant" or roles != ["user", "assistant"] * (len(roles) // 2):
            return "bad_turn_alternation"
    if len(chosen) != len(rejected):
        return "turn_count_mismatch"
    if chosen[:-1] != rejected[:-1]:
        return "history_mismatch"
    if " ".join(chosen[-1]["content"].split()) == " ".join(rejected[-1]["content"].split()):
        return "identical_answers"
    return None


def load_examples(source: SourceConfig, data_dir: str | Path) -> list[Example]:
    """All examples of a source; a malformed row (or, for a pair source, a row that is not a pair) fails with the
    file and row number named."""
    rows, origin = load_rows(source, data_dir)
    examples, skipped = [], []
    what = "an A/B item" if source.format == "ab_item" else "a preference pair"

    def conversation_of(row: dict, i: int, field: str | None = None) -> Conversation:
        try:
            conversation = row_to_conversation(row, source, field)
        except (KeyError, TypeError) as e:
            raise DataError(f"{origin}: row {i} of source {source.name!r} is malformed for format "
                            f"{format_name(source)!r} (missing or bad field {e})") from e
        return conversation[:1] if source.first_user_turn else conversation

    for i, row in enumerate(rows, start=source.skip_rows + 1):
        conversation = conversation_of(row, i)
        if not source.rejected_field:
            if conversation and conversation[0]["content"]:
                examples.append(Example(conversation, source.label))
            continue
        rejected = conversation_of(row, i, source.rejected_field)
        problem = pair_problem(conversation, rejected)
        if problem is None and source.format == "ab_item":
            problem = ab_problem(conversation[0]["content"], conversation[1]["content"], rejected[1]["content"])
        if problem is None:
            examples.append(Example(conversation, source.label, rejected))
        elif source.skip_invalid:
            skipped.append(f"{i} ({problem})")
        else:
            raise DataError(f"{origin}: row {i} of source {source.name!r} is not {what} ({problem}; fields "
                            f"{source.field!r} / {source.rejected_field!r}); skip_invalid: true skips such rows")
    if skipped:
        log.info("source %s: skipped %d rows that are not %s: rows %s", source.name, len(skipped), what,
                 ", ".join(skipped))
    return examples


def load_conversations(source: SourceConfig, data_dir: str | Path) -> list[Conversation]:
    """All conversations of a source (the chosen ones of a pair source)."""
    return [e.conversation for e in load_examples(source, data_dir)]


_BINARY = {0: 0, 1: 1, "0": 0, "1": 1}


def load_labelled(source: SourceConfig, data_dir: str | Path) -> tuple[list[str], list[int], str]:
    """Texts, binary labels (1 if any of ``source.label_fields`` is 1, "1" or true) and where they came from. A row
    with no label, no text or a label that is not binary fails with its file and row named (rows with no label are
    skipped instead with ``skip_unlabelled``)."""
    rows, origin = load_rows(source, data_dir)
    field = source.field or _DEFAULT_FIELD[source.format]
    texts, labels = [], []
    for i, row in enumerate(rows, start=source.skip_rows + 1):
        values = [v for v in (field_value(row, f) for f in source.label_fields) if v is not None]
        if not values and source.skip_unlabelled:
            continue
        if not values:
            raise DataError(f"{origin}: row {i} has no label (none of the fields {list(source.label_fields)})")
        if any(v not in _BINARY for v in values):
            raise DataError(f"{origin}: row {i} has a label that is not 0/1 in {list(source.label_fields)}: {values}")
        if not isinstance(row.get(field), str) or not row[field].strip():
            raise DataError(f"{origin}: row {i} has no text in field {field!r}")
        texts.append(row[field])
        labels.append(max(_BINARY[v] for v in values))
    return texts, labels, origin
