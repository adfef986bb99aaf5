"""Unit tests of save_generator, load_generator and save_file_keeping_previous."""

import json

import numpy as np
import pytest
import torch
import torch.serialization

import gan_helpers as gh

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device")
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(),
                                   reason="checks the error on a machine without CUDA")


def make_generator(seed=0, **overrides):
    torch.manual_seed(seed)
    arguments = {"context_length": 6, "horizon": 3, "noise_size": 4,
                 "hidden_size": 8, **overrides}
    return gh.Generator(**arguments)


def assert_same_weights(first, second):
    first_state, second_state = first.state_dict(), second.state_dict()
    assert list(first_state) == list(second_state)
    for name, tensor in first_state.items():
        assert torch.equal(tensor.cpu(), second_state[name].cpu()), name
        assert tensor.dtype == second_state[name].dtype, name


def rewrite_config(path, **changes):
    config_path = path.with_suffix(".json")
    config = json.loads(config_path.read_text())
    config["generator"].update(changes)
    config_path.write_text(json.dumps(config))


# ---------------------------------------------------------------------------
# Round trip
# ---------------------------------------------------------------------------


def test_checkpoint_round_trip_exact(tmp_path):
    generator = make_generator()
    extra = {"scaler": {"mean": 1.25, "std": 0.5}, "epochs": 3}
    path = gh.save_generator(generator, tmp_path / "generator.pt", extra=extra)
    assert path == tmp_path / "generator.pt"
    loaded, config = gh.load_generator(path, "cpu")
    assert_same_weights(generator, loaded)
    assert config == {"generator": generator.config(), **extra}
    assert loaded.config() == generator.config()
    context, noise = torch.randn(2, 6), torch.randn(2, 4)
    assert torch.equal(loaded(context, noise), generator(context, noise))


def test_checkpoint_json_beside_weights(tmp_path):
    gh.save_generator(make_generator(), tmp_path / "generator.pt", extra={"a": 1})
    config = json.loads((tmp_path / "generator.json").read_text())
    assert config == {"generator": {"context_length": 6, "horizon": 3,
                                    "noise_size": 4, "hidden_size": 8},
                      "a": 1}


def test_checkpoint_loads_with_weights_only(tmp_path):
    generator = make_generator()
    gh.save_generator(generator, tmp_path / "generator.pt")
    state = torch.load(tmp_path / "generator.pt", weights_only=True)
    assert set(state) == set(generator.state_dict())
    assert all(isinstance(tensor, torch.Tensor) for tensor in state.values())


def test_checkpoint_default_device_is_cpu(tmp_path):
    gh.save_generator(make_generator(), tmp_path / "generator.pt")
    loaded, _ = gh.load_generator(tmp_path / "generator.pt")
    assert {p.device.type for p in loaded.parameters()} == {"cpu"}


# ---------------------------------------------------------------------------
# Configuration that does not match the weights
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, weight",
    [({"hidden_size": 16}, "lstm.weight_ih_l0"),
     ({"noise_size": 5}, "head.0.weight"),
     ({"horizon": 4}, "head.2.weight")],
)
def test_checkpoint_config_mismatch_names_weight(tmp_path, change, weight):
    path = gh.save_generator(make_generator(), tmp_path / "generator.pt")
    rewrite_config(path, **change)
    with pytest.raises(ValueError, match=f"does not match its configuration: weight "
                                         f"'{weight}' has shape"):
        gh.load_generator(path)


def test_checkpoint_unknown_config_field(tmp_path):
    path = gh.save_generator(make_generator(), tmp_path / "generator.pt")
    rewrite_config(path, num_layers=2)
    expected = "invalid generator configuration.*'num_layers'"
    with pytest.raises(ValueError, match=expected):
        gh.load_generator(path)


def test_checkpoint_missing_config_field(tmp_path):
    path = gh.save_generator(make_generator(), tmp_path / "generator.pt")
    config = json.loads(path.with_suffix(".json").read_text())
    del config["generator"]["horizon"]
    path.with_suffix(".json").write_text(json.dumps(config))
    expected = "invalid generator configuration.*'horizon'"
    with pytest.raises(ValueError, match=expected):
        gh.load_generator(path)


@pytest.mark.parametrize("text", ['{"scaler": {}}', "not json", "[1, 2]"])
def test_checkpoint_config_not_generator(tmp_path, text):
    path = gh.save_generator(make_generator(), tmp_path / "generator.pt")
    path.with_suffix(".json").write_text(text)
    with pytest.raises(ValueError, match="is not a generator configuration"):
        gh.load_generator(path)


def test_checkpoint_missing_and_unexpected_weights(tmp_path):
    generator = make_generator()
    path = tmp_path / "generator.pt"
    gh.save_generator(generator, path)
    state = generator.state_dict()
    state["head.9.weight"] = state.pop("head.2.bias")
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"missing weights \['head.2.bias'\], "
                                         r"unexpected weights \['head.9.weight'\]"):
        gh.load_generator(path)


# ---------------------------------------------------------------------------
# Files that are not checkpoints
# ---------------------------------------------------------------------------


def write_beside_config(tmp_path, write):
    path = gh.save_generator(make_generator(), tmp_path / "generator.pt")
    write(path)
    return path


@pytest.mark.parametrize(
    "write",
    [
        lambda path: path.write_bytes(np.random.default_rng(0).bytes(512)),
        lambda path: path.write_text("weights: none\n"),
        lambda path: path.write_bytes(b""),
    ],
    ids=["random bytes", "text file", "empty file"],
)
def test_checkpoint_not_a_checkpoint(tmp_path, write):
    path = write_beside_config(tmp_path, write)
    expected = (r"is not a checkpoint written by save_generator: "
                r"torch.load\(weights_only=True\) failed")
    with pytest.raises(ValueError, match=expected) as raised:
        gh.load_generator(path)
    # The torch error stays available as the cause, not as the message.
    assert raised.value.__cause__ is not None
    assert "\n" not in str(raised.value)


def test_checkpoint_pickled_module_rejected(tmp_path):
    # A whole pickled module needs weights_only=False, which can run code.
    generator = make_generator()
    path = write_beside_config(tmp_path, lambda path: torch.save(generator, path))
    expected = "is not a checkpoint written by save_generator"
    with pytest.raises(ValueError, match=expected):
        gh.load_generator(path)


def test_checkpoint_tensor_instead_of_state_dict(tmp_path):
    path = write_beside_config(tmp_path, lambda path: torch.save(torch.zeros(3), path))
    with pytest.raises(ValueError, match="does not hold a state dict"):
        gh.load_generator(path)


def test_checkpoint_missing_json(tmp_path):
    path = gh.save_generator(make_generator(), tmp_path / "generator.pt")
    path.with_suffix(".json").unlink()
    expected = r"checkpoint file not found: .*generator\.json"
    with pytest.raises(FileNotFoundError, match=expected):
        gh.load_generator(path)


def test_checkpoint_missing_weights_file(tmp_path):
    expected = r"checkpoint file not found: .*absent\.pt"
    with pytest.raises(FileNotFoundError, match=expected):
        gh.load_generator(tmp_path / "absent.pt")


def test_save_generator_rejects_json_path(tmp_path):
    with pytest.raises(ValueError, match="ends in .json"):
        gh.save_generator(make_generator(), tmp_path / "generator.json")
    assert list(tmp_path.iterdir()) == []


def test_save_generator_rejects_generator_key(tmp_path):
    with pytest.raises(ValueError, match="must not contain the key 'generator'"):
        gh.save_generator(make_generator(), tmp_path / "generator.pt",
                          extra={"generator": {}})
    assert list(tmp_path.iterdir()) == []


def test_save_generator_bad_extra_writes_nothing(tmp_path):
    with pytest.raises(TypeError, match="not JSON serializable"):
        gh.save_generator(make_generator(), tmp_path / "generator.pt",
                          extra={"mean": np.float32(1.0)})
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# Keeping the previous version
# ---------------------------------------------------------------------------


def test_resave_identical_keeps_no_previous(tmp_path, capsys):
    path = tmp_path / "generator.pt"
    gh.save_generator(make_generator(seed=0), path, extra={"a": 1})
    gh.save_generator(make_generator(seed=0), path, extra={"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["generator.json",
                                                         "generator.pt"]
    assert capsys.readouterr().out == ""


def test_resave_different_keeps_previous(tmp_path, capsys):
    path = tmp_path / "generator.pt"
    gh.save_generator(make_generator(seed=0), path)
    old_bytes = path.read_bytes()
    gh.save_generator(make_generator(seed=1), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "generator.json", "generator.previous.pt", "generator.pt"]
    assert (tmp_path / "generator.previous.pt").read_bytes() == old_bytes
    assert "generator.pt changed; the old version is kept as generator.previous.pt" \
        in capsys.readouterr().out
    loaded, _ = gh.load_generator(path)
    assert_same_weights(loaded, make_generator(seed=1))


def test_resave_changed_extra_keeps_previous_json(tmp_path, capsys):
    path = tmp_path / "generator.pt"
    gh.save_generator(make_generator(), path, extra={"a": 1})
    gh.save_generator(make_generator(), path, extra={"a": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "generator.json", "generator.previous.json", "generator.pt"]
    assert json.loads((tmp_path / "generator.previous.json").read_text())["a"] == 1
    assert "generator.json changed" in capsys.readouterr().out


def test_keep_previous_new_file(tmp_path, capsys):
    path = tmp_path / "data.csv"
    assert gh.save_file_keeping_previous(lambda target: target.write_text("a\n"),
                                         path) == path
    assert path.read_text() == "a\n"
    assert capsys.readouterr().out == ""


def test_keep_previous_leaves_no_scratch_files(tmp_path):
    path = tmp_path / "data.csv"
    for text in ["a\n", "a\n", "b\n"]:
        gh.save_file_keeping_previous(lambda target: target.write_text(text), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv",
                                                         "data.previous.csv"]
    assert path.read_text() == "b\n"
    assert (tmp_path / "data.previous.csv").read_text() == "a\n"


def test_keep_previous_failed_write_keeps_old(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("old\n")

    def fail(target):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        gh.save_file_keeping_previous(fail, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]
    assert path.read_text() == "old\n"


# ---------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------


def test_checkpoint_from_other_device_loads_on_cpu(tmp_path, monkeypatch):
    # Tag every storage as CUDA, as torch.save does for tensors on a GPU, so
    # the file needs map_location to load on a machine without one.
    generator = make_generator()
    path = gh.save_generator(generator, tmp_path / "generator.pt")
    with monkeypatch.context() as patch:
        patch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        torch.save(generator.state_dict(), path)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=True)
    for device in ("cpu", None):
        loaded, _ = gh.load_generator(path, device)
        assert {p.device.type for p in loaded.parameters()} == {"cpu"}
        assert_same_weights(generator, loaded)


@needs_no_cuda
def test_load_generator_cuda_without_cuda(tmp_path):
    path = gh.save_generator(make_generator(), tmp_path / "generator.pt")
    with pytest.raises(RuntimeError, match="CUDA is not available.*device='cpu'"):
        gh.load_generator(path, "cuda")


@needs_cuda
def test_checkpoint_cuda_round_trip(tmp_path):
    generator = make_generator().to("cuda")
    path = gh.save_generator(generator, tmp_path / "generator.pt")
    state = torch.load(path, weights_only=True)
    assert {tensor.device.type for tensor in state.values()} == {"cpu"}
    on_cpu, _ = gh.load_generator(path, "cpu")
    on_cuda, _ = gh.load_generator(path, "cuda")
    assert {p.device.type for p in on_cpu.parameters()} == {"cpu"}
    assert {p.device.type for p in on_cuda.parameters()} == {"cuda"}
    assert_same_weights(generator, on_cpu)
    assert_same_weights(generator, on_cuda)


def test_checkpoint_json_path_points_to_weights(tmp_path):
    path = gh.save_generator(make_generator(), tmp_path / "generator.pt")
    with pytest.raises(ValueError, match="pass the weights file, generator.pt"):
        gh.load_generator(path.with_suffix(".json"))


def test_checkpoint_invalid_device(tmp_path):
    path = gh.save_generator(make_generator(), tmp_path / "generator.pt")
    with pytest.raises(ValueError, match="invalid device 'gpu'"):
        gh.load_generator(path, device="gpu")
