"""BAIR from tiny fixtures in the real formats: TFRecord files of tf.train.Example protobufs and
the converted PNG tree.

The Examples are serialized with the ``protobuf`` package from a descriptor built here by hand
(the schema of TensorFlow's example.proto), so the package's own wire-format parser is checked
against an independent encoder; record framing uses ``frame_record``, whose checksums are
checked against published CRC32C vectors and a bit-by-bit CRC written here.
"""

import json
import struct

import numpy as np
import pytest
import torch

from svg_pyro.commands import cli
from svg_pyro.data import BAIR, load_testset
from svg_pyro.data.bair import find_sequences, natural_key
from svg_pyro.data.tfrecord import (
    RecordError,
    frame_record,
    iter_records,
    masked_crc32c,
    parse_example,
    record_index,
    write_records,
)

pb = pytest.importorskip("google.protobuf")


# -- an independent tf.train.Example encoder -------------------------------------------------
def _example_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="svg_pyro_test_example.proto", package="svgtest", syntax="proto3"
    )
    for name, kind in (("BytesList", F.TYPE_BYTES), ("FloatList", F.TYPE_FLOAT),
                       ("Int64List", F.TYPE_INT64)):  # fmt: skip
        msg = proto.message_type.add(name=name)
        msg.field.add(name="value", number=1, type=kind, label=F.LABEL_REPEATED)
    feature = proto.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, name in enumerate(("bytes_list", "float_list", "int64_list"), 1):
        type_name = ".svgtest." + {1: "BytesList", 2: "FloatList", 3: "Int64List"}[number]
        feature.field.add(name=name, number=number, type=F.TYPE_MESSAGE, type_name=type_name,
                          label=F.LABEL_OPTIONAL, oneof_index=0)  # fmt: skip
    features = proto.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, type_name=".svgtest.Feature",
                    label=F.LABEL_OPTIONAL)  # fmt: skip
    features.field.add(name="feature", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                       type_name=".svgtest.Features.FeatureEntry")  # fmt: skip
    example = proto.message_type.add(name="Example")
    example.field.add(name="features", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                      type_name=".svgtest.Features")  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("svgtest.Example"))


Example = _example_class()


def encode_example(frames, actions, positions, image_bytes=None, skip_key=None) -> bytes:
    """A BAIR record: frames uint8 [T, 64, 64, 3], actions [T, 4], positions [T, 3]."""
    ex = Example()
    for i in range(len(frames)):
        key = f"{i}/image_aux1/encoded"
        if key != skip_key:
            raw = frames[i].tobytes() if image_bytes is None else image_bytes
            ex.features.feature[key].bytes_list.value.append(raw)
        ex.features.feature[f"{i}/action"].float_list.value.extend(actions[i].tolist())
        ex.features.feature[f"{i}/endeffector_pos"].float_list.value.extend(positions[i].tolist())
    return ex.SerializeToString()


def random_sequence(rng, t=30):
    frames = rng.integers(0, 256, (t, 64, 64, 3), dtype=np.uint8)
    actions = rng.normal(size=(t, 4)).astype(np.float32)
    positions = rng.normal(size=(t, 3)).astype(np.float32)
    return frames, actions, positions


# train: two files whose natural order differs from plain sorting; test: one file.
LAYOUT = {"train": {"traj_10_to_11": 2, "traj_2_to_4": 3}, "test": {"traj_0_to_1": 2}}
ORDER = {"train": ["traj_2_to_4", "traj_10_to_11"], "test": ["traj_0_to_1"]}


def make_bair(root, png=True, tfrecords=True):
    """Both layouts of the same data; returns {split: [(name, frames, actions, positions)]}."""
    from PIL import Image

    rng = np.random.default_rng(0)
    truth = {}
    for split, files in LAYOUT.items():
        seqs = {}
        for stem, n in files.items():
            seqs[stem] = [random_sequence(rng) for _ in range(n)]
            if tfrecords:
                folder = root / "softmotion30_44k" / split
                folder.mkdir(parents=True, exist_ok=True)
                write_records(
                    folder / f"{stem}.tfrecords", [encode_example(*s) for s in seqs[stem]]
                )
            if png:
                for k, (frames, _, _) in enumerate(seqs[stem], 1):
                    folder = root / "processed_data" / split / stem / str(k)
                    folder.mkdir(parents=True)
                    for i, frame in enumerate(frames):
                        Image.fromarray(frame).save(folder / f"{i}.png")
        truth[split] = [(f"{stem}/{k}", *s) for stem in ORDER[split]
                        for k, s in enumerate(seqs[stem], 1)]  # fmt: skip
    return truth


@pytest.fixture(scope="module")
def bair(tmp_path_factory):
    root = tmp_path_factory.mktemp("bair")
    return root, make_bair(root)


def as_item(frames):
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255


# -- CRC32C and framing ----------------------------------------------------------------------
def crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def mask(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


@pytest.mark.parametrize(
    "data,crc",
    [
        (b"123456789", 0xE3069283),  # the CRC-32C check value
        (bytes(32), 0x8A9136AA),  # RFC 3720, B.4
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
    ],
)
def test_masked_crc32c_known_vectors(data, crc):
    assert crc32c_bitwise(data) == crc
    assert masked_crc32c(data) == mask(crc)


def test_framing_matches_the_format(tmp_path):
    rng = np.random.default_rng(1)
    payloads = [rng.bytes(n) for n in (0, 1, 300, 5000)]
    for p in payloads:
        framed = frame_record(p)
        assert struct.unpack("<Q", framed[:8])[0] == len(p)
        assert struct.unpack("<I", framed[8:12])[0] == mask(crc32c_bitwise(framed[:8]))
        assert framed[12:-4] == p
        assert struct.unpack("<I", framed[-4:])[0] == mask(crc32c_bitwise(p))
    path = write_records(tmp_path / "x.tfrecords", payloads)
    assert list(iter_records(path)) == payloads
    offsets = [o for o, _ in record_index(path)]
    assert offsets == [12, 12 + 16, 12 + 2 * 16 + 1, 12 + 3 * 16 + 301]


def test_parse_example_against_protobuf():
    ex = Example()
    ex.features.feature["b"].bytes_list.value.extend([b"", b"\x00\xffxyz"])
    ex.features.feature["f"].float_list.value.extend([1.5, -2.25, 3e-8])
    ex.features.feature["i"].int64_list.value.extend([0, -1, 2**40, -(2**63)])
    ex.features.feature["e"].float_list.value.extend([])
    out = parse_example(ex.SerializeToString())
    assert out["b"] == [b"", b"\x00\xffxyz"]
    np.testing.assert_array_equal(out["f"], np.array([1.5, -2.25, 3e-8], np.float32))
    assert out["f"].dtype == np.float32
    np.testing.assert_array_equal(out["i"], np.array([0, -1, 2**40, -(2**63)], np.int64))
    assert len(out["e"]) == 0


def test_parse_example_unpacked_lists():
    """Writers may emit one field per value instead of packed lists; both decode the same."""

    def ld(number, payload):  # a length-delimited field
        return bytes([number << 3 | 2, len(payload)]) + payload

    floats = b"".join(bytes([1 << 3 | 5]) + struct.pack("<f", v) for v in (0.5, -4.0))
    ints = bytes([1 << 3 | 0, 7, 1 << 3 | 0, 0x96, 0x01])  # 7, 150
    entry_f = ld(1, b"af") + ld(2, ld(2, floats))
    entry_i = ld(1, b"ai") + ld(2, ld(3, ints))
    out = parse_example(ld(1, ld(1, entry_f) + ld(1, entry_i)))
    np.testing.assert_array_equal(out["af"], np.array([0.5, -4.0], np.float32))
    np.testing.assert_array_equal(out["ai"], np.array([7, 150], np.int64))


# -- the dataset -----------------------------------------------------------------------------
def test_natural_order():
    names = ["traj_1024_to_1279", "traj_256_to_511", "traj_0_to_255"]
    assert sorted(names, key=natural_key) == [
        "traj_0_to_255",
        "traj_256_to_511",
        "traj_1024_to_1279",
    ]


@pytest.mark.parametrize("source", ["tfrecord", "png"])
def test_every_sequence_comes_back_exactly(bair, source):
    root, truth = bair
    for split in ("train", "test"):
        ds = BAIR(root, split, seq_len=30, source=source, progress=False)
        assert ds.source == source
        assert [s.name for s in ds.sequences] == [name for name, *_ in truth[split]]
        assert len(ds) == len(truth[split])
        for i, (_, frames, actions, positions) in enumerate(truth[split]):
            item = ds[i]
            assert item["frames"].shape == (30, 3, 64, 64) and item["frames"].dtype == torch.float32
            torch.testing.assert_close(item["frames"], as_item(frames), rtol=0, atol=0)
            if source == "tfrecord":
                np.testing.assert_array_equal(item["actions"].numpy(), actions)
                np.testing.assert_array_equal(item["endeffector_pos"].numpy(), positions)
            else:
                assert set(item) == {"frames"}


def test_auto_prefers_tfrecords_and_falls_back_to_png(bair, tmp_path):
    root, _ = bair
    assert find_sequences(root, "test")[0] == "tfrecord"
    png_only = tmp_path / "png_only"
    truth = make_bair(png_only, tfrecords=False)
    ds = BAIR(png_only, "test", seq_len=5, progress=False)
    assert ds.source == "png"
    torch.testing.assert_close(ds[1]["frames"], as_item(truth["test"][1][1][:5]), rtol=0, atol=0)
    # root may also be the softmotion30_44k folder itself
    assert len(BAIR(root / "softmotion30_44k", "train", progress=False)) == 5


def test_random_training_clips(bair):
    root, truth = bair
    ds = BAIR(root, "train", seq_len=12, length=25, seed=1, progress=False)
    again = BAIR(root, "train", seq_len=12, length=25, seed=1, progress=False)
    assert len(ds) == 25
    chosen = set()
    for i in range(25):
        seq, start = ds.clip(i)
        assert start == 0  # the original release trains on each sequence's first frames
        torch.testing.assert_close(
            ds[i]["frames"], as_item(truth["train"][seq][1][:12]), rtol=0, atol=0
        )
        assert again.clip(i) == (seq, start)
        chosen.add(seq)
    assert chosen == set(range(5))
    shifted = BAIR(root, "train", seq_len=12, length=25, seed=1, random_start=True, progress=False)
    starts = set()
    for i in range(25):
        seq, start = shifted.clip(i)
        assert 0 <= start <= 18
        frames = truth["train"][seq][1][start : start + 12]
        torch.testing.assert_close(shifted[i]["frames"], as_item(frames), rtol=0, atol=0)
        starts.add(start)
    assert len(starts) > 3


# -- errors: one line naming the file and the problem ------------------------------------------
def one_line(err):
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        BAIR(tmp_path / "nowhere", progress=False)
    assert "BAIR root" in one_line(err) and "nowhere does not exist" in one_line(err)


def test_empty_split(tmp_path):
    (tmp_path / "softmotion30_44k" / "train").mkdir(parents=True)
    with pytest.raises(ValueError) as err:
        BAIR(tmp_path, "test", progress=False)
    assert "no BAIR sequences for split 'test'" in one_line(err)


def _one_file_root(tmp_path, payloads):
    folder = tmp_path / "softmotion30_44k" / "test"
    folder.mkdir(parents=True)
    return write_records(folder / "traj_0_to_2.tfrecords", payloads)


def _payloads(n=3):
    rng = np.random.default_rng(2)
    return [encode_example(*random_sequence(rng, 30)) for _ in range(n)]


def test_truncated_file(tmp_path):
    path = _one_file_root(tmp_path, _payloads())
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(RecordError) as err:
        BAIR(tmp_path, "test", progress=False)
    message = one_line(err)
    assert str(path) in message and "truncated: record 2" in message
    path.write_bytes(data[: len(data) // 3 * 3 - 5])  # inside the first records
    with pytest.raises(RecordError, match="truncated"):
        BAIR(tmp_path, "test", progress=False)


def test_corrupt_length(tmp_path):
    path = _one_file_root(tmp_path, _payloads())
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01  # record 0's length
    path.write_bytes(bytes(data))
    with pytest.raises(RecordError) as err:
        BAIR(tmp_path, "test", progress=False)
    assert f"{path}: corrupt: record 0 at byte 0: length checksum mismatch" == one_line(err)


def test_corrupt_payload(tmp_path):
    payloads = _payloads()
    path = _one_file_root(tmp_path, payloads)
    data = bytearray(path.read_bytes())
    second = len(frame_record(payloads[0])) + 12
    data[second + 5000] ^= 0x40  # a byte of record 1's image data
    path.write_bytes(bytes(data))
    ds = BAIR(tmp_path, "test", progress=False)
    ds[0], ds[2]  # the others read fine
    with pytest.raises(RecordError) as err:
        ds[1]
    assert f"{path}: corrupt: record 1: data checksum mismatch" == one_line(err)


def test_record_that_is_not_an_example(tmp_path):
    path = _one_file_root(tmp_path, [b"\x0a\xff\xff\xff"])
    with pytest.raises(RecordError) as err:
        BAIR(tmp_path, "test", progress=False)[0]
    assert f"{path}: record 0 is not a tf.train.Example" in one_line(err)


def test_image_of_the_wrong_size(tmp_path):
    rng = np.random.default_rng(3)
    frames, actions, positions = random_sequence(rng)
    path = _one_file_root(tmp_path, [encode_example(frames, actions, positions, bytes(100))])
    with pytest.raises(RecordError) as err:
        BAIR(tmp_path, "test", progress=False)[0]
    assert f"{path}: record 0: '0/image_aux1/encoded' holds 100 bytes, expected 12288" in one_line(
        err
    )


def test_missing_frame_key(tmp_path):
    rng = np.random.default_rng(3)
    seq = random_sequence(rng)
    path = _one_file_root(tmp_path, [encode_example(*seq, skip_key="7/image_aux1/encoded")])
    ds = BAIR(tmp_path, "test", seq_len=7, progress=False)
    torch.testing.assert_close(ds[0]["frames"], as_item(seq[0][:7]), rtol=0, atol=0)
    with pytest.raises(RecordError) as err:
        BAIR(tmp_path, "test", seq_len=8, progress=False)[0]
    assert f"{path}: record 0: no image bytes under '7/image_aux1/encoded'" == one_line(err)


def test_png_of_the_wrong_size(tmp_path):
    from PIL import Image

    make_bair(tmp_path, tfrecords=False)
    bad = tmp_path / "processed_data" / "test" / "traj_0_to_1" / "2" / "3.png"
    Image.new("RGB", (32, 64)).save(bad)
    ds = BAIR(tmp_path, "test", progress=False)
    with pytest.raises(ValueError) as err:
        ds[1]
    assert f"{bad}: image is 32x64, expected 64x64" == one_line(err)
    bad.unlink()
    with pytest.raises(FileNotFoundError, match="missing frame 3"):
        ds[1]


def test_seq_len_out_of_range(bair):
    with pytest.raises(ValueError, match="seq_len must be in 1..30"):
        BAIR(bair[0], "test", seq_len=31, progress=False)


# -- command line ----------------------------------------------------------------------------
def test_cli_bair_testset(bair, tmp_path):
    root, truth = bair
    out = tmp_path / "bair_test.npz"
    assert cli.main(["data", "bair-testset", "--root", str(root), "--out", str(out),
                     "--no-progress"]) == 0  # fmt: skip
    data = load_testset(out)
    assert data["frames"].shape == (2, 30, 3, 64, 64) and data["frames"].dtype == np.uint8
    for i, (name, frames, actions, positions) in enumerate(truth["test"]):
        np.testing.assert_array_equal(data["frames"][i], frames.transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(data["actions"][i], actions)
        np.testing.assert_array_equal(data["endeffector_pos"][i], positions)
        assert str(data["sequence"][i]) == name
    meta = json.loads(str(data["meta"]))
    assert meta["dataset"] == "bair" and meta["source"] == "tfrecord"


def test_cli_train_tiny_on_bair(bair, tmp_path):
    root, _ = bair
    out = tmp_path / "run"
    argv = ["train", "--preset", "tiny", "--dataset", "bair", "--data-root", str(root),
            "--encoder", "vgg", "--channels", "3", "--nf", "4", "--g-dim", "8", "--z-dim", "2",
            "--rnn-size", "16", "--steps", "3", "--batch-size", "2", "--n-past", "2",
            "--n-future", "2", "--log-every", "1", "--device", "cpu", "--out", str(out),
            "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in records)
    assert (out / "checkpoint.pt").is_file()


def test_cli_train_channel_mismatch(bair, tmp_path, capsys):
    argv = ["train", "--preset", "tiny", "--dataset", "bair", "--data-root", str(bair[0]),
            "--out", str(tmp_path / "run"), "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 2
    assert "pass --channels 3" in capsys.readouterr().err
