"""KTH Actions read from the original ``personNN_action_dK_uncomp.avi`` files.

Videos are decoded once with PyAV (no system ffmpeg needed) to one grey channel, resized from
160x120 to 64x64 with bicubic filtering (no crop; the original release converted with
``ffmpeg -s 64x64``, whose default filter is bicubic too) and kept in an on-disk cache of uint8
arrays, one ``.npy`` a video, that later runs memory-map. Persons 1-20 form the training split,
21-25 the test split. When a ``00sequences.txt`` is found, each frame range it lists for a clip
is one sequence (clips it does not list are used whole); otherwise every clip is one sequence.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

ACTIONS = ("boxing", "handclapping", "handwaving", "jogging", "running", "walking")
SPLIT_PERSONS = {"train": tuple(range(1, 21)), "test": tuple(range(21, 26))}
FRAME_SIZE = (160, 120)  # width, height of the original videos
IMAGE_SIZE = 64
SEQUENCES_FILE = "00sequences.txt"
CACHE_ENV = "SVG_PYRO_CACHE_DIR"
_CACHE_VERSION = 1
_VIDEO_NAME = re.compile(r"^(person(\d{2})_([a-z]+)_d(\d+))_uncomp\.avi$")
_CLIP_LINE = re.compile(r"^\s*(person\d{2}_[a-z]+_d\d+)\b(.*)$")
_RANGE = re.compile(r"(\d+)\s*-\s*(\d+)")


@dataclass(frozen=True)
class KTHVideo:
    """One clip file: ``name`` is ``personNN_action_dK``."""

    name: str
    path: Path
    person: int
    action: str
    scenario: int


@dataclass(frozen=True)
class Segment:
    """Frames ``start .. stop-1`` (0-based) of video ``video`` form one sequence."""

    video: int
    start: int
    stop: int

    @property
    def length(self) -> int:
        return self.stop - self.start


def _check_root(root: str | Path, what: str) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"{what} root {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{what} root {root} is not a folder")
    return root


def find_videos(root: str | Path) -> list[KTHVideo]:
    """Every ``personNN_action_dK_uncomp.avi`` anywhere under ``root``, sorted by name."""
    root = _check_root(root, "KTH")
    found: dict[str, KTHVideo] = {}
    for path in sorted(root.rglob("*.avi")):
        match = _VIDEO_NAME.match(path.name)
        if not match or not path.is_file():
            continue
        name, person, action, scenario = match.groups()
        if name in found:
            raise ValueError(f"two copies of KTH clip {name}: {found[name].path} and {path}")
        found[name] = KTHVideo(name, path, int(person), action, int(scenario))
    return [found[k] for k in sorted(found)]


def parse_sequences_file(path: str | Path) -> dict[str, list[tuple[int, int]]]:
    """Read KTH's ``00sequences.txt``: ``{clip name: [(first, last), ...]}``.

    Frame numbers are 1-based and inclusive, as in the file; each clip's ranges are sorted by
    their first frame. The file's quirks are accepted: header text, tabs and spaces in any
    mix, 3 or 4 ranges a line, ranges out of order, a clip marked missing (listed with no
    ranges). A range whose last frame comes before its first, or a clip listed twice, is an
    error naming the file and line.
    """
    path = Path(path)
    out: dict[str, list[tuple[int, int]]] = {}
    lines_of: dict[str, int] = {}
    text = path.read_text(encoding="utf-8", errors="replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        match = _CLIP_LINE.match(line)
        if not match:
            continue
        name, rest = match.groups()
        if name in out:
            raise ValueError(
                f"{path}:{lineno}: {name} is listed twice (also on line {lines_of[name]})"
            )
        ranges = []
        for a, b in _RANGE.findall(rest):
            first, last = int(a), int(b)
            if first < 1 or last < first:
                raise ValueError(f"{path}:{lineno}: bad frame range {a}-{b} for {name}")
            ranges.append((first, last))
        out[name], lines_of[name] = sorted(ranges), lineno
    return out


def decode_video(
    path: str | Path,
    image_size: int = IMAGE_SIZE,
    expected_size: tuple[int, int] | None = FRAME_SIZE,
) -> np.ndarray:
    """Every frame of a video as uint8 ``[N, image_size, image_size]`` (grey, bicubic resize).

    ``expected_size`` (width, height) is checked on the first frame; ``None`` accepts any.
    Raises ``ValueError`` naming the file if it cannot be decoded, has no frames or has
    frames of another size.
    """
    import av  # imported here so that the package imports without PyAV

    path = Path(path)
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: no video stream")
            for frame in container.decode(video=0):
                if expected_size is not None and (frame.width, frame.height) != expected_size:
                    raise ValueError(
                        f"{path}: frames are {frame.width}x{frame.height}, expected "
                        f"{expected_size[0]}x{expected_size[1]}"
                    )
                small = frame.reformat(
                    width=image_size, height=image_size, format="gray", interpolation="BICUBIC"
                )
                frames.append(small.to_ndarray())
    except av.FFmpegError as err:
        raise ValueError(f"{path}: cannot decode video ({err})") from None
    if not frames:
        raise ValueError(f"{path}: no video frames could be decoded")
    return np.stack(frames).astype(np.uint8, copy=False)


class FrameCache:
    """Decoded videos as ``<dir>/<name>.npy`` (uint8 ``[N, 64, 64]``) plus ``<name>.json``.

    The JSON holds the source file's size and modification time: a changed file is decoded
    again. Files are written via a temporary name and a rename, so a crash leaves no half
    entry.
    """

    def __init__(self, directory: str | Path, image_size: int = IMAGE_SIZE):
        self.dir = Path(directory)
        self.image_size = image_size

    def _key(self, video: KTHVideo) -> dict[str, Any]:
        stat = video.path.stat()
        return {
            "version": _CACHE_VERSION,
            "image_size": self.image_size,
            "source_bytes": stat.st_size,
            "source_mtime_ns": stat.st_mtime_ns,
        }

    def paths(self, video: KTHVideo) -> tuple[Path, Path]:
        return self.dir / f"{video.name}.npy", self.dir / f"{video.name}.json"

    def frame_count(self, video: KTHVideo) -> int | None:
        """Frames of ``video`` if its cache entry is present and current, else ``None``."""
        array_path, meta_path = self.paths(video)
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return None
        if not array_path.is_file() or any(meta.get(k) != v for k, v in self._key(video).items()):
            return None
        return int(meta["frames"])

    def store(self, video: KTHVideo, frames: np.ndarray) -> None:
        array_path, meta_path = self.paths(video)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = array_path.with_name(f"{array_path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as f:
                np.save(f, frames)
            os.replace(tmp, array_path)
            meta = dict(self._key(video), frames=int(len(frames)), source=str(video.path))
            tmp = meta_path.with_name(f"{meta_path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(meta, indent=1) + "\n")
            os.replace(tmp, meta_path)
        except OSError as err:
            raise ValueError(
                f"cannot write the KTH frame cache in {self.dir} ({err}); "
                f"choose another folder with cache_dir= or ${CACHE_ENV}"
            ) from None

    def load(self, video: KTHVideo) -> np.ndarray:
        """The cached frames, memory-mapped read-only: uint8 ``[N, 64, 64]``."""
        array_path, _ = self.paths(video)
        frames = np.load(array_path, mmap_mode="r", allow_pickle=False)
        expected = (self.image_size, self.image_size)
        if frames.dtype != np.uint8 or frames.ndim != 3 or frames.shape[1:] != expected:
            raise ValueError(f"{array_path}: not a KTH frame cache entry; delete it")
        return frames


def default_cache_dir(root: str | Path, image_size: int = IMAGE_SIZE) -> Path:
    """Where decoded KTH frames go: ``$SVG_PYRO_CACHE_DIR/kth64`` if that variable is set,
    else ``<root>/.svg_pyro_cache/kth64``."""
    base = os.environ.get(CACHE_ENV)
    base_path = Path(base).expanduser() if base else Path(root) / ".svg_pyro_cache"
    return base_path / f"kth{image_size}"


class KTH(Dataset):
    """KTH Actions sequences, items ``{"frames": float32 [seq_len, 1, 64, 64] in [0, 1]}``.

    ``root`` is any folder holding the ``personNN_action_dK_uncomp.avi`` files (any layout,
    e.g. one folder per action as the zips unpack). ``split`` is ``"train"`` (persons 1-20) or
    ``"test"`` (21-25). ``sequences``: ``True`` uses a ``00sequences.txt`` found under ``root``
    if there is one, a path uses that file, ``False`` uses whole clips.

    With ``length=None`` item ``i`` is the first ``seq_len`` frames of the i-th sequence that
    has at least ``seq_len`` frames. With ``length=L`` there are ``L`` items and item ``i`` is a
    random clip drawn from ``numpy.random.default_rng([seed, i])``: a sequence uniformly among
    those long enough, then a uniform start. Items are the same every time and in every worker.

    Videos of the split are decoded on first use into ``cache_dir`` (default
    :func:`default_cache_dir`), with a progress bar, and memory-mapped afterwards.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        seq_len: int = 20,
        length: int | None = None,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        sequences: bool | str | Path = True,
        progress: bool = True,
        expected_size: tuple[int, int] | None = FRAME_SIZE,
    ):
        if split not in SPLIT_PERSONS:
            raise ValueError(f"KTH split must be one of {sorted(SPLIT_PERSONS)}, got {split!r}")
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        if length is not None and length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        self.root = _check_root(root, "KTH")
        self.split, self.seq_len, self.length, self.seed = split, seq_len, length, seed
        persons = SPLIT_PERSONS[split]
        self.videos = [v for v in find_videos(self.root) if v.person in persons]
        if not self.videos:
            raise ValueError(
                f"no KTH videos of persons {persons[0]}-{persons[-1]} (split {split!r}) under "
                f"{self.root}: expected files named personNN_action_dK_uncomp.avi"
            )
        self.cache = FrameCache(cache_dir if cache_dir is not None else default_cache_dir(root))
        self.sequences_file = self._find_sequences_file(sequences)
        ranges = parse_sequences_file(self.sequences_file) if self.sequences_file else {}
        counts = self._decode_missing(progress, expected_size)
        self.segments = self._segments(ranges, counts)
        self.eligible = [s for s in self.segments if s.length >= seq_len]
        if not self.eligible:
            raise ValueError(
                f"no KTH sequence of split {split!r} under {self.root} has {seq_len} frames"
            )
        self._arrays: dict[int, np.ndarray] = {}

    def _find_sequences_file(self, sequences: bool | str | Path) -> Path | None:
        if sequences is False:
            return None
        if sequences is True:
            found = sorted(self.root.rglob(SEQUENCES_FILE))
            return found[0] if found else None
        path = Path(sequences)
        if not path.is_file():
            raise FileNotFoundError(f"KTH sequences file {path} does not exist")
        return path

    def _decode_missing(self, progress: bool, expected_size: tuple[int, int] | None) -> list[int]:
        counts = [self.cache.frame_count(v) for v in self.videos]
        todo = [i for i, n in enumerate(counts) if n is None]
        bar = tqdm(todo, desc=f"decoding KTH ({self.split})", unit="video",
                   disable=not progress or not todo)  # fmt: skip
        for i in bar:
            video = self.videos[i]
            bar.set_postfix_str(video.name)
            frames = decode_video(video.path, self.cache.image_size, expected_size)
            self.cache.store(video, frames)
            counts[i] = len(frames)
        return [int(n) for n in counts]

    def _segments(self, ranges: dict[str, list[tuple[int, int]]], counts: list[int]) -> list:
        segments, cut = [], []
        for i, (video, n) in enumerate(zip(self.videos, counts)):
            listed = ranges.get(video.name)
            if not listed:  # not in the file (or marked missing there): the whole clip
                segments.append(Segment(i, 0, n))
                continue
            for first, last in listed:
                start, stop = first - 1, min(last, n)
                if stop < last:
                    fate = f"cut to {first}-{stop}" if stop > start else "dropped"
                    cut.append(f"{video.name} {first}-{last} {fate} ({n} frames)")
                if stop > start:
                    segments.append(Segment(i, start, stop))
        if cut:
            more = f" and {len(cut) - 3} more" if len(cut) > 3 else ""
            warnings.warn(
                f"{self.sequences_file}: {len(cut)} frame range(s) run past the end of their "
                f"video: {'; '.join(cut[:3])}{more}",
                stacklevel=3,
            )
        return segments

    # -- access ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.eligible) if self.length is None else self.length

    def clip(self, index: int) -> tuple[int, int]:
        """``(video index, first frame)`` (0-based) of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if self.length is None:
            seg = self.eligible[index]
            return seg.video, seg.start
        rng = np.random.default_rng([self.seed, index])
        seg = self.eligible[int(rng.integers(len(self.eligible)))]
        return seg.video, seg.start + int(rng.integers(seg.length - self.seq_len + 1))

    def video_frames(self, video: int) -> np.ndarray:
        """All cached frames of ``self.videos[video]``: uint8 ``[N, 64, 64]`` (memory-mapped)."""
        if video not in self._arrays:
            self._arrays[video] = self.cache.load(self.videos[video])
        return self._arrays[video]

    def clip_uint8(self, index: int) -> np.ndarray:
        """Item ``index`` as uint8 ``[seq_len, 1, 64, 64]``."""
        video, start = self.clip(index)
        frames = self.video_frames(video)[start : start + self.seq_len]
        return np.array(frames)[:, None]  # a writable copy, not a view of the memory map

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        frames = torch.from_numpy(self.clip_uint8(index))
        return {"frames": frames.float().div_(255.0)}

    def __getstate__(self) -> dict[str, Any]:  # workers re-open the memory maps themselves
        state = dict(self.__dict__)
        state["_arrays"] = {}
        return state


def write_kth_testset(
    root: str | Path,
    out: str | Path,
    sequences: int = 1000,
    frames: int = 40,
    seed: int = 42,
    cache_dir: str | Path | None = None,
    sequences_file: bool | str | Path = True,
    progress: bool = True,
) -> Path:
    """Write ``sequences`` seeded random test clips (persons 21-25) of ``frames`` frames.

    The ``.npz`` has the format of every test set here (``frames`` uint8 ``[N, T, 1, 64, 64]``,
    ``meta`` JSON) plus ``video`` (clip names) and ``start`` (0-based first frame of each clip).
    """
    if sequences < 1 or frames < 1:
        raise ValueError(f"need sequences >= 1 and frames >= 1, got {sequences}, {frames}")
    ds = KTH(root, "test", seq_len=frames, length=sequences, seed=seed, cache_dir=cache_dir,
             sequences=sequences_file, progress=progress)  # fmt: skip
    video = np.zeros((sequences, frames, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    names, starts = [], np.zeros(sequences, dtype=np.int32)
    for i in tqdm(range(sequences), desc="KTH test set", disable=not progress, unit="seq"):
        v, starts[i] = ds.clip(i)
        video[i] = ds.clip_uint8(i)
        names.append(ds.videos[v].name)
    meta = dict(dataset="kth", split="test", seed=seed, persons=list(SPLIT_PERSONS["test"]),
                sequences_file=ds.sequences_file is not None)  # fmt: skip
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:  # np.savez would append ".npz" to other names
        np.savez_compressed(f, frames=video, video=np.array(names), start=starts,
                            meta=np.array(json.dumps(meta)))  # fmt: skip
    return out
