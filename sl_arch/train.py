"""``sl-train``: BasicSR's own ``train_pipeline`` with sl_arch's classes registered.

Usage::

    sl-train -opt options/train/SemanticLens/train_SemanticLens_demo_cpu.yml [--auto_resume]
    torchrun --nproc_per_node 2 -m sl_arch.train -opt FILE.yml --launcher pytorch

``experiments/``, ``tb_logger/`` are created in the current directory. Differences from
``python basicsr/train.py``: ``--auto_resume`` also works without CUDA, ``--launcher pytorch``
uses gloo on the CPU and NCCL on CUDA and accepts ``--local-rank``, ``--local_rank`` or
``LOCAL_RANK``; bad input ends with one ``error:`` line and exit code 2.
"""
import os
import os.path as osp
import sys

import sl_arch  # noqa: F401  (registers archs, datasets, models; must precede basicsr)
import basicsr.train as basicsr_train
from sl_arch.utils import resume
from sl_arch.utils.dist import destroy_distributed, install_basicsr_launcher, normalize_local_rank_args
from sl_arch.utils.errors import SLError, cli_entry


def option_file_from_args(argv):
    """Return the ``-opt`` value of ``argv`` after checking that the file exists.

    Raises:
        SLError: ``-opt`` is missing or names no file.
    """
    for position, arg in enumerate(argv):
        if arg == '-opt' and position + 1 < len(argv):
            path = argv[position + 1]
            if not osp.isfile(path):
                raise SLError(f'option file {path} does not exist; pass -opt with a YAML file from options/.')
            return path
    raise SLError('no option file given; run with -opt FILE.yml (see options/).')


def run_pipeline(pipeline, argv):
    """Run a BasicSR pipeline in the current directory with our launcher and entry-point fixes."""
    argv = normalize_local_rank_args(list(argv))
    option_file_from_args(argv)
    sys.argv = [sys.argv[0]] + argv
    install_basicsr_launcher()
    try:
        pipeline(os.getcwd())
    finally:
        destroy_distributed()


@cli_entry
def main(argv=None):
    """Train with BasicSR's ``train_pipeline``; see the module docstring for the options."""
    resume.install(basicsr_train)
    run_pipeline(basicsr_train.train_pipeline, sys.argv[1:] if argv is None else argv)


if __name__ == '__main__':
    main()
