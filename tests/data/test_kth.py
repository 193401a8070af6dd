"""KTH from tiny fixtures in the real format: .avi files written with PyAV and a 00sequences.txt.

Fixture frames are uniform grey, each (video, frame) with its own value, and written losslessly,
so a 64x64 frame that comes back identifies exactly which source frame it is.
"""

import json
import warnings

import numpy as np
import pytest
import torch

from svg_pyro.commands import cli
from svg_pyro.data import KTH, load_testset, write_kth_testset
from svg_pyro.data.kth import decode_video, find_videos, parse_sequences_file

av = pytest.importorskip("av")

N_FRAMES = 12
# clip name -> (sub-folder, fixture code); the code picks the grey values (see `value`).
CLIPS = {
    "person01_boxing_d1": ("boxing", 0),
    "person02_walking_d2": ("walking", 1),
    "person03_jogging_d4": ("jogging/deeper/still", 2),  # any layout under root
    "person21_handwaving_d1": ("handwaving", 3),
    "person25_boxing_d3": ("boxing", 4),
}
# The quirks of the real file: header text, tabs and spaces mixed, 3 or 4 ranges, ranges out
# of order, a missing clip, a line for a clip with no file, a clip with no line (person03),
# ranges that run past the end of the video (person25).
SEQUENCES_TXT = (
    "Sequences of the KTH action database\n"
    "\n"
    "Training:\tperson11, person12, person13\n"
    "person01_boxing_d1\t\tframes\t1-3, 8-12,  4-7\n"
    "person02_walking_d2 frames 7-9,1-3 ,\t10-12, 4-6\n"
    "person05_running_d1\t\tframes\t1-40, 41-80, 81-100, 101-120\n"
    "person13_handclapping_d3\t\t*missing*\n"
    "  person21_handwaving_d1\t  frames\t2-11\n"
    "person25_boxing_d3\t\tframes\t1-6, 7-15, 20-30\n"
)
# (clip, first, stop) with 0-based first frame and exclusive stop, in the loader's order.
TRAIN_SEGMENTS = [
    ("person01_boxing_d1", 0, 3), ("person01_boxing_d1", 3, 7), ("person01_boxing_d1", 7, 12),
    ("person02_walking_d2", 0, 3), ("person02_walking_d2", 3, 6), ("person02_walking_d2", 6, 9),
    ("person02_walking_d2", 9, 12), ("person03_jogging_d4", 0, 12),
]  # fmt: skip
TEST_SEGMENTS = [
    ("person21_handwaving_d1", 1, 11), ("person25_boxing_d3", 0, 6), ("person25_boxing_d3", 6, 12)
]  # fmt: skip


def value(code: int, t: int) -> int:
    """The grey level of frame t (0-based) of fixture clip `code`: unique per (code, t)."""
    return 3 + 40 * code + 3 * t


def write_avi(path, frames, codec="rawvideo", pix_fmt="gray"):
    """Write uint8 frames [T, H, W] as an AVI with PyAV (rawvideo gray is lossless)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.height, stream.width = frames.shape[1:]
        stream.pix_fmt = pix_fmt
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def uniform_clip(code, n=N_FRAMES, size=(120, 160)):
    return np.stack([np.full(size, value(code, t), np.uint8) for t in range(n)])


def make_kth(root, sequences=True):
    for name, (folder, code) in CLIPS.items():
        write_avi(root / folder / f"{name}_uncomp.avi", uniform_clip(code))
    if sequences:
        (root / "00sequences.txt").write_text(SEQUENCES_TXT)
    return root


def expected_clip(name, first, length):
    code = CLIPS[name][1]
    values = torch.tensor([value(code, t) for t in range(first, first + length)]) / 255.0
    return values.reshape(-1, 1, 1, 1).expand(length, 1, 64, 64)


def identify(frames):
    """(clip name, first frame) of a [T, 1, 64, 64] clip of fixture frames."""
    levels = (frames * 255).round().to(torch.int64)
    assert (levels == levels[:, :, :1, :1]).all(), "fixture frames are uniform"
    found = {value(code, t): (name, t) for name, (_, code) in CLIPS.items() for t in range(12)}
    names_t = [found[int(v)] for v in levels[:, 0, 0, 0]]
    name, first = names_t[0]
    assert names_t == [(name, first + i) for i in range(len(names_t))], "consecutive frames"
    return name, first


@pytest.fixture(scope="module")
def kth_root(tmp_path_factory):
    return make_kth(tmp_path_factory.mktemp("kth"))


def load(root, split="train", seq_len=1, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # person25's ranges are cut: tested on its own
        return KTH(root, split, seq_len=seq_len, progress=False, **kw)


def segments(ds):
    return [(ds.videos[s.video].name, s.start, s.stop) for s in ds.segments]


def test_parse_sequences_file_quirks(kth_root):
    ranges = parse_sequences_file(kth_root / "00sequences.txt")
    assert ranges == {
        "person01_boxing_d1": [(1, 3), (4, 7), (8, 12)],
        "person02_walking_d2": [(1, 3), (4, 6), (7, 9), (10, 12)],
        "person05_running_d1": [(1, 40), (41, 80), (81, 100), (101, 120)],
        "person13_handclapping_d3": [],
        "person21_handwaving_d1": [(2, 11)],
        "person25_boxing_d3": [(1, 6), (7, 15), (20, 30)],
    }


def test_bad_range_names_file_and_line(tmp_path):
    path = tmp_path / "00sequences.txt"
    path.write_text("header\nperson01_boxing_d1\t\tframes\t1-95, 120-96\n")
    with pytest.raises(ValueError, match=r"00sequences.txt:2: bad frame range 120-96"):
        parse_sequences_file(path)


def test_find_videos_any_layout(kth_root):
    videos = find_videos(kth_root)
    assert [v.name for v in videos] == sorted(CLIPS)
    v = videos[2]
    assert (v.person, v.action, v.scenario) == (3, "jogging", 4)
    assert v.path.parent == kth_root / "jogging" / "deeper" / "still"


def test_splits_and_segments(kth_root):
    train, test = load(kth_root, "train"), load(kth_root, "test")
    assert {v.person for v in train.videos} == {1, 2, 3}
    assert {v.person for v in test.videos} == {21, 25}
    assert segments(train) == TRAIN_SEGMENTS
    assert segments(test) == TEST_SEGMENTS
    assert train.sequences_file == kth_root / "00sequences.txt"


def test_range_past_the_end_is_cut_with_a_warning(kth_root):
    with pytest.warns(UserWarning) as record:
        KTH(kth_root, "test", seq_len=1, progress=False)
    message = str(record[0].message)
    assert "00sequences.txt: 2 frame range(s) run past the end of their video" in message
    assert "person25_boxing_d3 7-15 cut to 7-12 (12 frames)" in message
    assert "person25_boxing_d3 20-30 dropped" in message


def test_decoding_shows_a_progress_bar(tmp_path, capsys):
    root = make_kth(tmp_path / "kth", sequences=False)
    KTH(root, "test", seq_len=2, progress=True)
    assert "decoding KTH (test)" in capsys.readouterr().err
    KTH(root, "test", seq_len=2, progress=True)  # cached: nothing to decode, no bar
    assert "decoding KTH" not in capsys.readouterr().err


def test_items_are_exactly_the_listed_frames(kth_root):
    ds = load(kth_root, "train", seq_len=4)
    eligible = [s for s in TRAIN_SEGMENTS if s[2] - s[1] >= 4]
    assert len(ds) == len(eligible) == 3
    for i, (name, first, _) in enumerate(eligible):
        item = ds[i]["frames"]
        assert item.dtype == torch.float32 and item.shape == (4, 1, 64, 64)
        torch.testing.assert_close(item, expected_clip(name, first, 4), rtol=0, atol=0)
    with pytest.raises(IndexError):
        ds[3]


def test_whole_clips_without_sequences_file(tmp_path):
    root = make_kth(tmp_path / "kth", sequences=False)
    ds = load(root, "test", seq_len=N_FRAMES)
    assert ds.sequences_file is None
    assert segments(ds) == [("person21_handwaving_d1", 0, 12), ("person25_boxing_d3", 0, 12)]
    torch.testing.assert_close(
        ds[1]["frames"], expected_clip("person25_boxing_d3", 0, N_FRAMES), rtol=0, atol=0
    )
    # the same root with the file present, but told to ignore it
    (root / "00sequences.txt").write_text(SEQUENCES_TXT)
    assert segments(load(root, "test", sequences=False)) == segments(ds)


def test_random_clips_are_seeded_and_valid(kth_root):
    ds = load(kth_root, "train", seq_len=4, length=40, seed=3)
    again = load(kth_root, "train", seq_len=4, length=40, seed=3)
    other = load(kth_root, "train", seq_len=4, length=40, seed=4)
    assert len(ds) == 40
    seen = set()
    for i in range(40):
        clip = ds[i]["frames"]
        name, first = identify(clip)
        assert any(n == name and a <= first and first + 4 <= b for n, a, b in TRAIN_SEGMENTS)
        torch.testing.assert_close(clip, again[i]["frames"], rtol=0, atol=0)
        seen.add((name, first))
    assert len(seen) > 5  # different clips and starts are drawn
    assert any(not torch.equal(ds[i]["frames"], other[i]["frames"]) for i in range(40))


def test_cache_is_reused_and_refreshed(tmp_path, monkeypatch):
    root = make_kth(tmp_path / "kth")
    cache = tmp_path / "cache"
    load(root, "test", seq_len=2, cache_dir=cache)
    assert sorted(p.name for p in cache.glob("*.npy")) == [
        "person21_handwaving_d1.npy", "person25_boxing_d3.npy"
    ]  # fmt: skip
    meta = json.loads((cache / "person21_handwaving_d1.json").read_text())
    assert meta["frames"] == N_FRAMES

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is current")

    monkeypatch.setattr("svg_pyro.data.kth.decode_video", no_decoding)
    ds = load(root, "test", seq_len=2, cache_dir=cache)
    torch.testing.assert_close(
        ds[0]["frames"][:2], expected_clip("person21_handwaving_d1", 1, 2), rtol=0, atol=0
    )
    monkeypatch.undo()
    # A changed file (other size and contents) is decoded again.
    write_avi(root / "handwaving" / "person21_handwaving_d1_uncomp.avi", uniform_clip(0, n=14))
    ds = load(root, "test", seq_len=2, cache_dir=cache)
    assert segments(ds)[0] == ("person21_handwaving_d1", 1, 11)
    torch.testing.assert_close(
        ds[0]["frames"][:2], expected_clip("person01_boxing_d1", 1, 2), rtol=0, atol=0
    )
    assert json.loads((cache / "person21_handwaving_d1.json").read_text())["frames"] == 14


def test_default_cache_lives_under_root(tmp_path, monkeypatch):
    monkeypatch.delenv("SVG_PYRO_CACHE_DIR", raising=False)
    root = make_kth(tmp_path / "kth")
    load(root, "test")
    assert (root / ".svg_pyro_cache" / "kth64" / "person25_boxing_d3.npy").is_file()
    monkeypatch.setenv("SVG_PYRO_CACHE_DIR", str(tmp_path / "elsewhere"))
    load(root, "test")
    assert (tmp_path / "elsewhere" / "kth64" / "person25_boxing_d3.npy").is_file()


def test_resize_is_bicubic_grey_and_not_transposed(tmp_path):
    """A compressed (mpeg4, yuv420p) video like the originals against PIL's bicubic resize."""
    from PIL import Image

    y, x = np.mgrid[0:120, 0:160]
    frame = np.where(x < 60, 30, 220).astype(np.uint8)  # dark left, bright right
    frame[y < 40] = 120  # a grey band at the top
    path = tmp_path / "person01_boxing_d1_uncomp.avi"
    write_avi(path, np.stack([frame] * 3), codec="mpeg4", pix_fmt="yuv420p")
    out = decode_video(path)
    assert out.shape == (3, 64, 64) and out.dtype == np.uint8
    ref = np.asarray(Image.fromarray(frame).resize((64, 64), Image.BICUBIC)).astype(float)
    diff = np.abs(out[1].astype(float) - ref)
    assert diff.mean() < 3.0, diff.mean()
    assert out[1, 40:, :16].mean() < 45 and out[1, 40:, -16:].mean() > 205
    assert abs(out[1, :16].mean() - 120) < 6


# -- errors: one line naming the file and the problem ------------------------------------------
def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"KTH root .*nowhere does not exist"):
        KTH(tmp_path / "nowhere", progress=False)


def test_empty_split(tmp_path):
    write_avi(tmp_path / "person01_boxing_d1_uncomp.avi", uniform_clip(0))
    with pytest.raises(ValueError, match=r"no KTH videos of persons 21-25 \(split 'test'\)"):
        KTH(tmp_path, "test", progress=False)


def test_video_of_unexpected_size(tmp_path):
    write_avi(tmp_path / "person22_running_d2_uncomp.avi", uniform_clip(0, n=3, size=(60, 80)))
    with pytest.raises(ValueError) as err:
        KTH(tmp_path, "test", progress=False)
    message = str(err.value)
    assert "person22_running_d2_uncomp.avi" in message and "80x60" in message
    assert "expected 160x120" in message and "\n" not in message


def test_corrupt_video(tmp_path):
    (tmp_path / "person22_running_d2_uncomp.avi").write_bytes(b"RIFF" + bytes(range(256)) * 8)
    with pytest.raises(ValueError, match=r"person22_running_d2_uncomp.avi: cannot decode video"):
        KTH(tmp_path, "test", progress=False)


def test_too_short_for_seq_len(kth_root):
    with pytest.raises(ValueError, match=r"no KTH sequence of split 'test' .* has 13 frames"):
        load(kth_root, "test", seq_len=13)


# -- command line ----------------------------------------------------------------------------
def test_cli_kth_testset(kth_root, tmp_path):
    out = tmp_path / "kth_test.npz"
    argv = ["data", "kth-testset", "--root", str(kth_root), "--out", str(out),
            "--sequences", "30", "--frames", "5", "--no-progress"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli.main(argv) == 0
        first = load_testset(out)
        assert cli.main(argv[:-1] + ["--seed", "42", "--no-progress"]) == 0  # 42 is the default
    again = load_testset(out)
    frames = first["frames"]
    assert frames.shape == (30, 5, 1, 64, 64) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, again["frames"])
    meta = json.loads(str(first["meta"]))
    assert meta["dataset"] == "kth" and meta["seed"] == 42 and meta["split"] == "test"
    for i in range(30):
        name, start = identify(torch.from_numpy(frames[i]).float() / 255)
        assert (str(first["video"][i]), int(first["start"][i])) == (name, start)
        assert any(n == name and a <= start and start + 5 <= b for n, a, b in TEST_SEGMENTS)
    # the function and the command agree
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = write_kth_testset(kth_root, tmp_path / "direct.npz", sequences=30, frames=5,
                                   progress=False)  # fmt: skip
    np.testing.assert_array_equal(load_testset(direct)["frames"], frames)


def test_cli_error_is_one_line(tmp_path, capsys):
    code = cli.main(["data", "kth-testset", "--root", str(tmp_path / "none"), "--out",
                     str(tmp_path / "x.npz"), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "does not exist" in err


def test_cli_train_tiny_on_kth(kth_root, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--preset", "tiny", "--dataset", "kth", "--data-root", str(kth_root),
            "--encoder", "vgg", "--nf", "4", "--g-dim", "8", "--z-dim", "2", "--rnn-size", "16",
            "--steps", "3", "--batch-size", "2", "--n-past", "2", "--n-future", "2",
            "--log-every", "1", "--device", "cpu", "--out", str(out), "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in records)
    config = json.loads((out / "config.json").read_text())
    assert config["train"]["dataset"] == "kth" and config["model"]["encoder"] == "vgg"
    assert (out / "checkpoint.pt").is_file()


def test_cli_train_needs_data_root(tmp_path, capsys):
    code = cli.main(["train", "--preset", "kth", "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2 and "needs --data-root" in capsys.readouterr().err
