"""The install contract: pyproject.toml, environment.yml, the installer and the README agree."""
import re
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def split_req(req: str):
    m = re.match(r'^\s*([A-Za-z0-9_.\-]+)\s*(.*)$', req)
    return m.group(1).lower().replace('_', '-'), m.group(2).replace(' ', '')


def pyproject():
    return tomllib.loads((ROOT / 'pyproject.toml').read_text())['project']


def test_environment_yml_names_the_same_dependencies_and_pins():
    proj = pyproject()
    core = dict(split_req(r) for r in proj['dependencies'])
    installer = (ROOT / 'tools' / 'setup_env.sh').read_text()
    # the extras the README's set-up command installs (test, tune), which the conda file names too
    extras = re.search(r'-e "\.\[([a-z,]+)\]"', installer).group(1).split(',')
    assert 'test' in extras and 'tune' in extras
    test_extra = {k: v for e in extras for k, v in (split_req(r) for r in proj['optional-dependencies'][e])}
    sparse = dict(split_req(r) for r in proj['optional-dependencies']['sparse'])
    env_text = (ROOT / 'environment.yml').read_text()
    env = yaml.safe_load(env_text)
    pip_section = next(d['pip'] for d in env['dependencies'] if isinstance(d, dict))
    env_pip = dict(split_req(r) for r in pip_section)
    assert set(env_pip) == set(core) | set(test_extra)
    pinned = {'torch': 'TORCH_SPEC', 'torch-geometric': 'PYG_SPEC'}
    for name, spec in {**core, **test_extra}.items():
        if name in pinned:
            continue
        assert env_pip[name] == spec, name
    # torch and PyG: pyproject accepts a range (so a user's CUDA build or own PyG is not replaced); the conda
    # file and the installer pin the same version, which the range admits.
    for name, var in pinned.items():
        assert core[name].startswith('>='), name
        pin = re.search(rf'{var}:-{name}==([0-9.]+)', installer).group(1)
        assert env_pip[name] == f'=={pin}'
        low = core[name].removeprefix('>=')
        assert tuple(map(int, pin.split('.'))) >= tuple(map(int, low.split('.'))), name
    # The compiled extras: the same pins in the conda file's post-install line and in the installer.
    post = re.search(r'post-install: pip install --no-build-isolation (.+)', env_text).group(1).split()
    assert dict(split_req(r) for r in post) == sparse
    for name, spec in sparse.items():
        assert f'{name}{spec}' in installer


def test_readme_commands_exist_and_ci_runs_the_test_command():
    readme = (ROOT / 'README.md').read_text()
    makefile = (ROOT / 'Makefile').read_text()
    assert 'make demo' in readme and 'make test' in readme
    assert re.search(r'^demo:', makefile, re.M) and re.search(r'^test:', makefile, re.M)
    assert 'make test' in (ROOT / '.ci' / 'run').read_text()


def test_console_script_declared():
    assert pyproject()['scripts']['pyg-diffcl'] == 'pyg_diffcl.cli:main'


def test_import_is_cheap_and_exposes_the_subpackages():
    import subprocess
    import sys
    code = ("import sys, pyg_diffcl; heavy = 'torch' in sys.modules; "
            "print(heavy, pyg_diffcl.nn.LightGCNPropagation.__name__, pyg_diffcl.models.DiffCL.__name__, "
            "pyg_diffcl.ops.BipartiteAdj.__name__, sorted(set(pyg_diffcl.__all__) - set(dir(pyg_diffcl))))")
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ['False', 'LightGCNPropagation', 'DiffCL', 'BipartiteAdj', '[]']
