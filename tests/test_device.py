"""Unit tests of choose_device and its GAN_TUTORIAL_DEVICE override."""

import pytest
import torch

import gan_helpers as gh

VARIABLE = "GAN_TUTORIAL_DEVICE"

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device")
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(),
                                   reason="checks the error on a machine without CUDA")


@pytest.fixture(autouse=True)
def no_device_variable(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)


def test_choose_device_default_prints_device(capsys):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    device = gh.choose_device()
    assert device == torch.device(expected)
    assert capsys.readouterr().out == f"device: {expected}\n"


def test_choose_device_cpu_requested(capsys):
    assert gh.choose_device("cpu") == torch.device("cpu")
    assert capsys.readouterr().out == "device: cpu\n"


@needs_no_cuda
def test_choose_device_cuda_without_cuda():
    with pytest.raises(RuntimeError) as raised:
        gh.choose_device("cuda")
    message = str(raised.value)
    assert "CUDA is not available" in message
    assert "pass device='cpu'" in message


@pytest.mark.parametrize("requested", ["gpu", "cuda:x", "cpu cuda"])
def test_choose_device_invalid_string(requested):
    with pytest.raises(ValueError, match=f"invalid device '{requested}' "
                                         r"\(requested\): use 'cpu', 'cuda'"):
        gh.choose_device(requested)


def test_variable_overrides_default(monkeypatch, capsys):
    monkeypatch.setenv(VARIABLE, "cpu")
    assert gh.choose_device() == torch.device("cpu")
    assert capsys.readouterr().out == "device: cpu\n"


def test_argument_overrides_variable(monkeypatch):
    monkeypatch.setenv(VARIABLE, "not-a-device")
    assert gh.choose_device("cpu") == torch.device("cpu")


def test_invalid_variable_named_in_error(monkeypatch):
    monkeypatch.setenv(VARIABLE, "gpu")
    with pytest.raises(ValueError, match=r"invalid device 'gpu' \(set in "
                                         "GAN_TUTORIAL_DEVICE\\)"):
        gh.choose_device()


def test_empty_variable_counts_as_unset(monkeypatch):
    monkeypatch.setenv(VARIABLE, "")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert gh.choose_device() == torch.device(expected)


@needs_no_cuda
def test_cuda_variable_without_cuda(monkeypatch):
    monkeypatch.setenv(VARIABLE, "cuda")
    with pytest.raises(RuntimeError, match="was set in GAN_TUTORIAL_DEVICE but "
                                           "CUDA is not available.*unset "
                                           "GAN_TUTORIAL_DEVICE"):
        gh.choose_device()


@needs_cuda
def test_choose_device_cuda(capsys):
    assert gh.choose_device("cuda").type == "cuda"
    assert capsys.readouterr().out == "device: cuda\n"


@needs_cuda
def test_choose_device_cuda_index_out_of_range():
    count = torch.cuda.device_count()
    with pytest.raises(RuntimeError, match=f"this machine has {count} CUDA devices"):
        gh.choose_device(f"cuda:{count}")


@pytest.mark.parametrize("requested", ["mps", "meta"])
def test_choose_device_unsupported_type(requested):
    with pytest.raises(ValueError, match=f"unsupported device '{requested}' "
                                         r"\(requested\): the tutorial runs on"):
        gh.choose_device(requested)


@needs_no_cuda
def test_make_windows_cuda_without_cuda():
    with pytest.raises(RuntimeError, match="'cuda' was requested but CUDA is not "
                                           "available on this machine"):
        gh.make_windows(list(range(10)), 3, 2, device="cuda")


def test_make_windows_invalid_device():
    with pytest.raises(ValueError, match=r"invalid device 'gpu' \(requested\): use 'cpu'"):
        gh.make_windows(list(range(10)), 3, 2, device="gpu")
