"""The README's model example is run as written, so the front door cannot drift from the code."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_model_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "SieveNet.from_config" in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    assert "torch.Size([1, 3, 256, 192]) torch.Size([1, 3, 256, 192]) torch.Size([1, 8, 256, 192])" in (
        capsys.readouterr().out
    )
    assert (tmp_path / "my-release" / "manifest.json").is_file()
