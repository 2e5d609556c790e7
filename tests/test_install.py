"""The two installs: requirements.txt (PyPI's PyTorch, with CUDA) and requirements-cpu.txt (PyTorch's CPU wheels)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pins(name: str) -> dict[str, str]:
    """package -> pinned version of a requirements file's `package==version` lines."""
    lines = (line.split("#")[0].strip() for line in (ROOT / name).read_text().splitlines())
    return dict(line.split("==") for line in lines if "==" in line)


def test_cpu_requirements_pin_requirements_txt_s_torch_from_pytorch_s_cpu_index():
    """The CPU install takes the same torch and torchvision as requirements.txt, so that installing
    requirements.txt after it keeps the CPU wheels; only from PyTorch's CPU index."""
    cpu, full = pins("requirements-cpu.txt"), pins("requirements.txt")
    assert cpu == {k: full[k] for k in ("torch", "torchvision")}
    assert "--index-url https://download.pytorch.org/whl/cpu" in (ROOT / "requirements-cpu.txt").read_text()
    assert "requirements-cpu.txt" in (ROOT / "README.md").read_text()
