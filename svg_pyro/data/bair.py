"""BAIR robot pushing (``softmotion30_44k``), read from its TFRecord files or a PNG tree.

Two layouts under ``root`` are understood:

* ``softmotion30_44k/{train,test}/*.tfrecords`` as downloaded (``root`` may also be the
  ``softmotion30_44k`` folder itself). Each record is a ``tf.train.Example`` holding, for frame
  ``i`` in 0..29, ``{i}/image_aux1/encoded`` (raw 64x64x3 uint8 RGB bytes, not PNG),
  ``{i}/action`` (4 floats) and ``{i}/endeffector_pos`` (3 floats). Every record's checksums
  are verified when it is read.
* ``processed_data/{train,test}/<file>/<k>/<i>.png``, the tree the original release's
  ``convert_bair.py`` writes (``<file>`` is the TFRecord name without ``.tfrecords``, ``<k>``
  the record number from 1, ``<i>`` the frame from 0). It holds no actions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from svg_pyro.data.tfrecord import RecordError, parse_example_checked, read_record, record_index

FRAMES = 30  # frames in every BAIR sequence
IMAGE_SIZE = 64
FRAME_BYTES = IMAGE_SIZE * IMAGE_SIZE * 3
IMAGE_KEY = "{}/image_aux1/encoded"
ACTION_KEY, ACTION_DIM = "{}/action", 4
POSITION_KEY, POSITION_DIM = "{}/endeffector_pos", 3
SPLITS = ("train", "test")
SOURCES = ("auto", "tfrecord", "png")


def natural_key(name: str) -> list:
    """Sort key that orders ``traj_256_to_511`` before ``traj_1024_to_1279``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


@dataclass(frozen=True)
class BAIRSequence:
    """Where one sequence lives: a record of a TFRecord file, or a PNG folder."""

    name: str  # "<file>/<k>", k from 1: the same name in both layouts
    path: Path  # the .tfrecords file or the PNG folder
    record: int = -1  # record number in the file, from 0 (-1 for PNG)
    offset: int = 0  # payload offset and length in the file
    length: int = 0


def _tfrecord_files(root: Path, split: str) -> list[Path]:
    for folder in (root / "softmotion30_44k" / split, root / split):
        files = sorted(folder.glob("*.tfrecords"), key=lambda p: natural_key(p.name))
        if files:
            return files
    return []


def _png_folders(root: Path, split: str) -> list[Path]:
    for folder in (root / "processed_data" / split, root / split):
        if not folder.is_dir():
            continue
        found = []
        for file_dir in sorted(folder.iterdir(), key=lambda p: natural_key(p.name)):
            if not file_dir.is_dir():
                continue
            subs = [d for d in file_dir.iterdir() if d.is_dir() and (d / "0.png").is_file()]
            found.extend(sorted(subs, key=lambda p: natural_key(p.name)))
        if found:
            return found
    return []


def find_sequences(
    root: str | Path, split: str, source: str = "auto", progress: bool = False
) -> tuple[str, list[BAIRSequence]]:
    """The sequences of ``split`` under ``root``: ``("tfrecord" | "png", sequences)``.

    ``source="auto"`` prefers TFRecord files and falls back to the PNG tree. Indexing a
    TFRecord file reads only record headers (their checksums are checked here; each
    payload's when it is read). Errors name the file and what is wrong.
    """
    if split not in SPLITS:
        raise ValueError(f"BAIR split must be one of {SPLITS}, got {split!r}")
    if source not in SOURCES:
        raise ValueError(f"BAIR source must be one of {SOURCES}, got {source!r}")
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"BAIR root {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"BAIR root {root} is not a folder")
    if source in ("auto", "tfrecord"):
        files = _tfrecord_files(root, split)
        if files:
            sequences = []
            for path in tqdm(files, desc=f"indexing BAIR ({split})", unit="file",
                             disable=not progress or len(files) < 2):  # fmt: skip
                stem = path.name[: -len(".tfrecords")]
                for number, (offset, length) in enumerate(record_index(path)):
                    sequences.append(
                        BAIRSequence(f"{stem}/{number + 1}", path, number, offset, length)
                    )
            if not sequences:
                raise ValueError(f"BAIR split {split!r}: the .tfrecords files under {root} "
                                 f"hold no records ({files[0]}, ...)")  # fmt: skip
            return "tfrecord", sequences
    if source in ("auto", "png"):
        folders = _png_folders(root, split)
        if folders:
            return "png", [BAIRSequence(f"{d.parent.name}/{d.name}", d) for d in folders]
    looked = {
        "auto": f"softmotion30_44k/{split}/*.tfrecords or processed_data/{split}/<file>/<k>/0.png",
        "tfrecord": f"softmotion30_44k/{split}/*.tfrecords",
        "png": f"processed_data/{split}/<file>/<k>/0.png",
    }[source]
    raise ValueError(f"no BAIR sequences for split {split!r} under {root} (looked for {looked})")


def read_tfrecord_sequence(seq: BAIRSequence, start: int, count: int) -> dict[str, np.ndarray]:
    """Frames ``start..start+count-1`` of a TFRecord sequence.

    Returns ``frames`` uint8 ``[count, 64, 64, 3]``, ``actions`` float32 ``[count, 4]`` and
    ``endeffector_pos`` float32 ``[count, 3]``; :class:`RecordError` names the file, record
    and key of anything missing or malformed.
    """
    with open(seq.path, "rb") as f:
        payload = read_record(f, seq.offset, seq.length, seq.path, seq.record)
    example = parse_example_checked(payload, seq.path, seq.record)
    where = f"{seq.path}: record {seq.record}"
    frames = np.empty((count, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    actions = np.empty((count, ACTION_DIM), dtype=np.float32)
    positions = np.empty((count, POSITION_DIM), dtype=np.float32)
    for j, i in enumerate(range(start, start + count)):
        key = IMAGE_KEY.format(i)
        value = example.get(key)
        if not isinstance(value, list) or not value:
            raise RecordError(f"{where}: no image bytes under '{key}'")
        if len(value[0]) != FRAME_BYTES:
            raise RecordError(
                f"{where}: '{key}' holds {len(value[0])} bytes, expected {FRAME_BYTES} "
                f"(raw {IMAGE_SIZE}x{IMAGE_SIZE}x3 uint8)"
            )
        frames[j] = np.frombuffer(value[0], dtype=np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE, 3)
        for k, dim, out in ((ACTION_KEY, ACTION_DIM, actions), (POSITION_KEY, POSITION_DIM,
                                                                 positions)):  # fmt: skip
            key = k.format(i)
            value = example.get(key)
            if not isinstance(value, np.ndarray) or value.shape != (dim,):
                got = "nothing" if value is None else f"{len(value)} values"
                raise RecordError(f"{where}: '{key}' should hold {dim} floats, got {got}")
            out[j] = value
    return {"frames": frames, "actions": actions, "endeffector_pos": positions}


def read_png_sequence(seq: BAIRSequence, start: int, count: int) -> dict[str, np.ndarray]:
    """Frames ``start..start+count-1`` of a PNG folder: ``frames`` uint8 ``[count, 64, 64, 3]``."""
    from PIL import Image

    frames = np.empty((count, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for j, i in enumerate(range(start, start + count)):
        path = seq.path / f"{i}.png"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing frame {i} of BAIR sequence {seq.name}")
        try:
            with Image.open(path) as image:
                if image.size != (IMAGE_SIZE, IMAGE_SIZE):
                    raise ValueError(
                        f"{path}: image is {image.size[0]}x{image.size[1]}, "
                        f"expected {IMAGE_SIZE}x{IMAGE_SIZE}"
                    )
                frames[j] = np.asarray(image.convert("RGB"))
        except OSError as err:  # PIL's UnidentifiedImageError and truncated files
            raise ValueError(f"{path}: not a readable PNG ({err})") from None
    return {"frames": frames}


class BAIR(Dataset):
    """BAIR robot pushing sequences, items ``{"frames": float32 [seq_len, 3, 64, 64] in [0, 1]}``.

    From TFRecord files the items also hold ``actions`` ``[seq_len, 4]`` and
    ``endeffector_pos`` ``[seq_len, 3]`` (float32). ``source`` picks the layout (see
    :func:`find_sequences`).

    With ``length=None`` item ``i`` is the first ``seq_len`` frames of sequence ``i`` (in file
    and record order). With ``length=L`` there are ``L`` items and item ``i`` is a sequence drawn
    from ``numpy.random.default_rng([seed, i])``, starting at frame 0 as in the original release,
    or at a uniform random start with ``random_start=True``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        seq_len: int = FRAMES,
        length: int | None = None,
        seed: int = 0,
        random_start: bool = False,
        source: str = "auto",
        progress: bool = True,
    ):
        if not 1 <= seq_len <= FRAMES:
            raise ValueError(f"BAIR seq_len must be in 1..{FRAMES}, got {seq_len}")
        if length is not None and length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        self.split, self.seq_len, self.length, self.seed = split, seq_len, length, seed
        self.random_start = random_start
        self.source, self.sequences = find_sequences(root, split, source, progress)
        self.root = Path(root)

    def __len__(self) -> int:
        return len(self.sequences) if self.length is None else self.length

    def clip(self, index: int) -> tuple[int, int]:
        """``(sequence index, first frame)`` of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if self.length is None:
            return index, 0
        rng = np.random.default_rng([self.seed, index])
        seq = int(rng.integers(len(self.sequences)))
        start = int(rng.integers(FRAMES - self.seq_len + 1)) if self.random_start else 0
        return seq, start

    def clip_arrays(self, index: int) -> dict[str, np.ndarray]:
        """Item ``index`` as stored: ``frames`` uint8 ``[seq_len, 64, 64, 3]`` (+ actions)."""
        seq, start = self.clip(index)
        reader = read_tfrecord_sequence if self.source == "tfrecord" else read_png_sequence
        return reader(self.sequences[seq], start, self.seq_len)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        arrays = self.clip_arrays(index)
        item = {k: torch.from_numpy(v) for k, v in arrays.items() if k != "frames"}
        frames = np.ascontiguousarray(arrays["frames"].transpose(0, 3, 1, 2))
        item["frames"] = torch.from_numpy(frames).float().div_(255.0)
        return item


def write_bair_testset(
    root: str | Path,
    out: str | Path,
    frames: int = FRAMES,
    source: str = "auto",
    progress: bool = True,
) -> Path:
    """Write every BAIR test sequence (first ``frames`` frames, file and record order).

    The ``.npz`` has the format of every test set here (``frames`` uint8 ``[N, T, 3, 64, 64]``,
    ``meta`` JSON) plus ``sequence`` (``<file>/<k>`` names) and, from TFRecord files,
    ``actions`` ``[N, T, 4]`` and ``endeffector_pos`` ``[N, T, 3]``.
    """
    ds = BAIR(root, "test", seq_len=frames, source=source, progress=progress)
    n = len(ds)
    video = np.zeros((n, frames, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    extra: dict[str, Any] = {}
    for i in tqdm(range(n), desc="BAIR test set", disable=not progress, unit="seq"):
        arrays = ds.clip_arrays(i)
        video[i] = arrays["frames"].transpose(0, 3, 1, 2)
        for key in ("actions", "endeffector_pos"):
            if key in arrays:
                if key not in extra:
                    extra[key] = np.zeros((n, *arrays[key].shape), dtype=np.float32)
                extra[key][i] = arrays[key]
    meta = dict(dataset="bair", split="test", source=ds.source, frames=frames)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:  # np.savez would append ".npz" to other names
        np.savez_compressed(f, frames=video, sequence=np.array([s.name for s in ds.sequences]),
                            meta=np.array(json.dumps(meta)), **extra)  # fmt: skip
    return out
