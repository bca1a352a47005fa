"""The option files we ship say true things: their Run lines name files that exist, and every
SemanticLens network_g copied from a preset still agrees with it."""
import re
from pathlib import Path

import pytest
import yaml

from sl_arch.archs.semantic_lens_arch import PRESETS

ROOT = Path(__file__).resolve().parents[1]
OPTION_FILES = sorted((ROOT / 'options').rglob('*.yml'))


def test_there_are_option_files():
    assert len(OPTION_FILES) >= 10


@pytest.mark.parametrize('path', OPTION_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_files_named_in_comments_exist(path):
    named = re.findall(r'(options/[\w/.-]+\.yml)', path.read_text(encoding='utf-8'))
    missing = [name for name in named if not (ROOT / name).is_file()]
    assert not missing, f'{path.relative_to(ROOT)} names missing files: {missing}'


def preset_named_in(text):
    match = re.search(r"PRESETS\['(\w+)'\]", text)
    return match.group(1) if match else None


@pytest.mark.parametrize('path', [p for p in OPTION_FILES if preset_named_in(p.read_text(encoding='utf-8'))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_network_copied_from_a_preset_agrees_with_it(path):
    text = path.read_text(encoding='utf-8')
    network = yaml.safe_load(text)['network_g']
    preset = PRESETS[preset_named_in(text)]
    differing = {}
    for key, value in preset.items():
        if key not in network:
            continue  # reported as absent below
        if (list(value) if isinstance(value, (list, tuple)) else value) != network[key]:
            differing[key] = (network[key], value)
    absent = sorted(key for key in preset if key not in network)
    assert not differing, f'{path.relative_to(ROOT)}: network_g differs from the preset it names: {differing}'
    assert not absent, f'{path.relative_to(ROOT)}: network_g lacks preset keys {absent}'
