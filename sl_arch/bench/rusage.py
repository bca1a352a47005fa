"""Run a command and write its own wall time, CPU time and peak resident memory as JSON.

Usage (by file path, not ``python -m``)::

    python sl_arch/bench/rusage.py RESULT.json COMMAND [ARGS...]

Only the standard library, and run as a file rather than as a module of ``sl_arch``: on Linux a
child's peak RSS (``ru_maxrss``) starts from the peak of the process that spawned it, so the
process that spawns the measured command must stay small; importing the ``sl_arch`` package
would load torch (about 800 MiB) first. The command's output passes through.
"""
import json
import os
import subprocess
import sys
import time


def run_and_measure(command):
    """Run ``command`` (a list) to its end; returns its exit code, wall and CPU seconds and peak RSS (MiB)."""
    started = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    return {'returncode': os.waitstatus_to_exitcode(status), 'wall_s': time.perf_counter() - started,
            'cpu_s': usage.ru_utime + usage.ru_stime, 'peak_rss_mib': usage.ru_maxrss / 1024}


def main(argv):
    """Command line: ``RESULT.json COMMAND [ARGS...]``; bad use is one line on stderr and exit code 2."""
    if argv[:1] in (['-h'], ['--help']):
        print(__doc__.strip().split('\n\n')[0] + '\n\nusage: python sl_arch/bench/rusage.py RESULT.json COMMAND [ARGS...]')
        return 0
    if len(argv) < 2:
        print('error: give RESULT.json and the command to measure: python sl_arch/bench/rusage.py RESULT.json '
              'COMMAND [ARGS...]', file=sys.stderr)
        return 2
    result_path, *command = argv
    try:
        result = run_and_measure(command)
    except OSError as error:  # the command cannot be started
        print(f'error: cannot run {command[0]}: {error.strerror}; give a command on the PATH or its path.',
              file=sys.stderr)
        return 2
    with open(result_path, 'w', encoding='utf-8') as handle:
        json.dump(result, handle)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
