"""``sl-test``: BasicSR's own ``test_pipeline`` with sl_arch's classes registered.

Usage::

    sl-test -opt options/test/SemanticLens/test_SemanticLens_demo_cpu.yml
    sl-test -opt FILE.yml --force_yml path:pretrain_network_g=experiments/NAME/models/net_g_latest.pth

Results (log, SR frames when ``val.save_img``) go to ``results/<name>/`` in the current directory.
The option file, ``--force_yml`` and the output folders are checked before anything is written;
bad input ends with one ``error:`` line and exit code 2.
"""
import sys

from basicsr.test import test_pipeline
from sl_arch.train import run_pipeline
from sl_arch.utils.errors import cli_entry


@cli_entry
def main(argv=None):
    """Test with BasicSR's ``test_pipeline``; ``-opt FILE.yml`` is required."""
    run_pipeline(test_pipeline, sys.argv[1:] if argv is None else argv, False, 'sl-test', __doc__)


if __name__ == '__main__':
    main()
