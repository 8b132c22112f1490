import json

import pytest
import torch

from sievenet import SieveNet
from sievenet.errors import WeightsError
from sievenet.models.sievenet import MANIFEST_FILE, WEIGHTS_FILE, sha256_file


@pytest.fixture
def release(tmp_path):
    model = SieveNet.from_config("sievenet-s", height=64, width=48)
    torch.nn.init.normal_(model.warp.coarse.regressor.fc.weight, std=0.01)  # not just the init values
    model.save_pretrained(tmp_path, manifest={"steps": 7, "perceptual_backbone": "random"})
    return model, tmp_path


def test_round_trip_is_bit_exact(release):
    model, folder = release
    loaded = SieveNet.from_pretrained(folder)
    assert loaded.config == model.config
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not loaded.training


def test_release_layout_and_manifest(release):
    _, folder = release
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "manifest.json", "model.safetensors"]
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["steps"] == 7 and manifest["perceptual_backbone"] == "random"
    assert len(manifest["weights"]["sha256"]) == 64
    from safetensors import safe_open

    with safe_open(str(folder / WEIGHTS_FILE), "pt") as f:
        prefixes = {k.split(".")[0] for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    assert prefixes == {"warp", "seg", "tt"}


def test_loading_the_safetensors_file_path_works(release):
    _, folder = release
    assert isinstance(SieveNet.from_pretrained(folder / WEIGHTS_FILE), SieveNet)


def test_a_flipped_byte_is_refused_naming_the_file(release):
    _, folder = release
    path = folder / WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"model\.safetensors failed its checksum"):
        SieveNet.from_pretrained(folder)


def test_a_truncated_file_is_refused(release):
    _, folder = release
    path = folder / WEIGHTS_FILE
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightsError, match="truncated or was modified"):
        SieveNet.from_pretrained(folder)


def test_mismatched_config_is_refused_by_its_checksum_then_by_shape(release):
    _, folder = release
    config = json.loads((folder / "config.json").read_text())
    config["seg_widths"] = [8, 16, 32, 64]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match=r"config\.json failed its checksum"):
        SieveNet.from_pretrained(folder)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["config_sha256"] = sha256_file(folder / "config.json")  # a consistent but mismatched release
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(WeightsError, match=r"does not match its config.json .*seg\.unet.*file .*config"):
        SieveNet.from_pretrained(folder)


def test_missing_pieces_say_what_is_missing(tmp_path, release):
    with pytest.raises(WeightsError, match="no weights at"):
        SieveNet.from_pretrained(tmp_path / "nowhere")
    _, folder = release
    (folder / MANIFEST_FILE).unlink()
    with pytest.raises(WeightsError, match="manifest.json is missing"):
        SieveNet.from_pretrained(folder)


def _fake_hub(monkeypatch, folder, sizes=None):
    """Stand-ins for the hub calls: file sizes from `sizes` (default: the real files of `folder`)."""
    import huggingface_hub
    from huggingface_hub.hf_api import RepoFile

    calls = []

    def fake_paths_info(repo_id, paths, revision=None):
        calls.append(("info", repo_id, revision))
        real = {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}
        known = real if sizes is None else sizes
        return [RepoFile(path=p, size=known[p], oid="0") for p in paths if p in known]

    def fake_snapshot_download(repo_id, revision=None, allow_patterns=None):
        calls.append(("download", repo_id, revision, tuple(allow_patterns)))
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "get_paths_info", fake_paths_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    return calls


def test_hf_ids_go_through_huggingface_hub(monkeypatch, release):
    _, folder = release
    calls = _fake_hub(monkeypatch, folder)
    assert isinstance(SieveNet.from_pretrained("hf://someone/sievenet-s@v1"), SieveNet)
    assert calls == [
        ("info", "someone/sievenet-s", "v1"),
        ("download", "someone/sievenet-s", "v1", (WEIGHTS_FILE, "config.json", MANIFEST_FILE)),
    ]


def test_hf_releases_are_size_checked_before_downloading(monkeypatch, release):
    _, folder = release
    huge = {WEIGHTS_FILE: 5 * 10**9, "config.json": 100, MANIFEST_FILE: 100}
    calls = _fake_hub(monkeypatch, folder, sizes=huge)
    with pytest.raises(WeightsError, match="5,000 MB, over the 1,024 MB limit.*SIEVENET_MAX_DOWNLOAD_MB"):
        SieveNet.from_pretrained("hf://someone/huge")
    assert [c[0] for c in calls] == ["info"]  # nothing was downloaded
    monkeypatch.setenv("SIEVENET_MAX_DOWNLOAD_MB", "6000")
    assert isinstance(SieveNet.from_pretrained("hf://someone/huge"), SieveNet)
    calls = _fake_hub(monkeypatch, folder, sizes={"config.json": 100})
    with pytest.raises(
        WeightsError, match="not a SieveNet release: it has no model.safetensors, manifest.json"
    ):
        SieveNet.from_pretrained("hf://someone/other-model")
    assert [c[0] for c in calls] == ["info"]


def test_hf_ids_can_be_limited_to_named_repositories(monkeypatch, release):
    _, folder = release
    calls = _fake_hub(monkeypatch, folder)
    monkeypatch.setenv("SIEVENET_HF_REPOS", "someone/sievenet-s, lab/*")
    with pytest.raises(WeightsError, match=r"hf://other/model is not one of .*someone/sievenet-s, lab/\*"):
        SieveNet.from_pretrained("hf://other/model")
    with pytest.raises(WeightsError, match="not one of"):
        SieveNet.from_pretrained("hf://someone/sievenet-s-evil")  # patterns match whole ids
    assert calls == []  # refused before any network call
    assert isinstance(SieveNet.from_pretrained("hf://someone/sievenet-s@v1"), SieveNet)
    assert isinstance(SieveNet.from_pretrained("hf://lab/any-release"), SieveNet)
    assert [c[1] for c in calls] == ["someone/sievenet-s"] * 2 + ["lab/any-release"] * 2


def test_hub_failures_become_a_clear_message(monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(huggingface_hub, "get_paths_info", offline)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(WeightsError, match="could not fetch hf://a/b"):
        SieveNet.from_pretrained("hf://a/b")
    with pytest.raises(WeightsError, match="expected hf://org/repo"):
        SieveNet.from_pretrained("hf://just-a-name")
