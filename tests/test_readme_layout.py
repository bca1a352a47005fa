"""The README's Layout section names every package and module of sl_arch: it cannot drift from the tree."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout_section():
    text = (ROOT / 'README.md').read_text(encoding='utf-8')
    match = re.search(r'^## Layout\n(.*?)(?=^## )', text, flags=re.S | re.M)
    assert match, 'README.md has no "## Layout" section'
    return match.group(1)


def test_layout_names_every_package_and_module():
    section = layout_section()
    named = set(re.findall(r'`([\w/.]+)`', section))
    missing = []
    for path in sorted((ROOT / 'sl_arch').rglob('*.py')):
        relative = path.relative_to(ROOT / 'sl_arch')
        if path.name in ('__init__.py', '_compat.py'):
            continue
        package = f'{relative.parent}/' if relative.parent != Path('.') else None
        if package and package not in named:
            missing.append(package)
        if path.name not in named and path.stem not in named and str(relative) not in named:
            missing.append(str(relative))
    assert not missing, f'README Layout section does not name: {sorted(set(missing))}'


def test_layout_names_only_what_exists():
    named = re.findall(r'`([\w/]+/)`', layout_section())
    absent = [name for name in named
              if not (ROOT / 'sl_arch' / name).is_dir() and not (ROOT / name).is_dir()]
    assert not absent, f'README Layout section names folders that do not exist: {absent}'
