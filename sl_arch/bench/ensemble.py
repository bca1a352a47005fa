"""What a two-pass test-time ensemble adds to finished ``sl-bench`` rows: ``python -m sl_arch.bench.ensemble``.

    python -m sl_arch.bench.ensemble experiments/benchmark/intel_c_s0_300_s23 \\
        experiments/benchmark/intel_c_s1_300_s23 --models SingleFrame_lean,SL_..._diff_reverse_interval12_lr2e-3 \\
        --reference SingleFrame_lean

Each row's final weights are tested again on its own test sets (and validation set) with each of ``sl-test``'s two
ensembles, which both take twice the test time of one pass:

* ``flip_seq`` (``val.flip_seq``): the clip, then the clip played backwards, as BasicSR runs it; the two outputs of
  each frame averaged. A network that restores each frame alone gives the same output twice: for a single-frame row
  it is not run, its plain score stands (``tests/test_model.py`` checks the equality);
* ``flip_width`` (``val.flip_width``): the clip and its mirror image, the self-ensemble every network can use.

With ``--last-weights``, rows trained with averaged weights (``train.ema_decay``; sl-bench tests them with those,
``params_ema``) are also tested once, one pass, with the weights their last iteration left (``params``): the same
training seen both ways, so what the averaging adds is measured without a second training (test ``last``; a row
without averaged weights has only those, and its plain score stands). ``--ensembles none`` runs that test alone.

Each test runs ``sl-test`` in a child process (one thread) as run ``ens_<ensemble>_bench_<row>`` of that work dir,
with the row's own test options and that one ``val`` key set (``last_bench_<row>`` with ``param_key_g: params``); a
rerun reads finished tests back. The plain scores are
sl-bench's own. Two tables: every work dir, and the means over them, where with ``--reference`` each row's score is
set against the reference's at the same test-time cost (plain against plain; a two-pass ensemble against the
reference's better two-pass ensemble in that work dir, so the reference is never handicapped; last weights against
the reference's last weights).
"""
import argparse
import os.path as osp

from sl_arch.archs.spec import arch_spec
from sl_arch.bench.common import comma_list, markdown_table, named_list
from sl_arch.bench.options import VALIDATION_SET, real_test_sets
from sl_arch.bench.report import psnr, real_psnr
from sl_arch.bench.runs import run_test
from sl_arch.bench.validate import named_finished_rows
from sl_arch.utils.ensemble import ENSEMBLES
from sl_arch.utils.errors import SLError, check_at_least, cli_entry


def scores(metrics):
    """``(real mean, validation)`` PSNR-Y of a ``{set: {'psnr': {'mean': ...}}}`` record, as sl-bench's report reads
    them (validation None where the row was not tested on it)."""
    row = {'metrics': metrics}
    real = real_psnr(row)
    if real is None:
        raise SLError(f'the tests hold {", ".join(metrics)}, not every real held-out set '
                      f'({", ".join(real_test_sets())}); ensemble reads rows tested on them all.')
    return real, psnr(row, VALIDATION_SET)


#: The one-pass test of a row's last weights (``--last-weights``), beside :data:`ENSEMBLES`.
LAST = 'last'


def ensemble_metrics(work_dir, row, record, ensemble, threads=1):
    """The metrics of one finished row tested with ``ensemble`` (or :data:`LAST`): ``sl-test`` run in ``work_dir``
    (read back where a test with the same options finished before)."""
    test = record['options']['test']
    if ensemble == LAST:
        if test['path'].get('param_key_g') != 'params_ema':  # trained without averaged weights: tested with its last
            return record['result']['metrics']
        return run_test(work_dir, dict(test, name=f'{LAST}_bench_{row}', path=dict(test['path'], param_key_g='params')),
                        threads, reuse=True)
    if ensemble == 'flip_seq' and arch_spec(test['network_g']).frame_wise:
        return record['result']['metrics']
    return run_test(work_dir, dict(test, name=f'ens_{ensemble}_bench_{row}',
                                   val=dict(test.get('val') or {}, **{ensemble: True})), threads, reuse=True)


def measure(work_dirs, rows, ensembles=ENSEMBLES, threads=1):
    """``{work dir: {row: {test: (real, validation)}}}``, test ``'plain'`` (sl-bench's) and each of ``ensembles``
    (and :data:`LAST`)."""
    results = {}
    for work_dir in work_dirs:
        finished = named_finished_rows(work_dir, rows)
        results[work_dir] = {}
        for row in rows:
            record = finished[row]
            results[work_dir][row] = {'plain': scores(record['result']['metrics'])}
            for ensemble in ensembles:
                results[work_dir][row][ensemble] = scores(ensemble_metrics(work_dir, row, record, ensemble, threads))
                real, validation = results[work_dir][row][ensemble]
                print(f'[ensemble] {row} ({osp.relpath(work_dir)}), {ensemble}: real {real:.3f} dB'
                      + ('' if validation is None else f', validation {validation:.3f}'), flush=True)
    return results


def _reference_score(by_test, test, index):
    """The reference's score at ``test``'s cost: its own plain (or last-weights) score, or its better two-pass
    ensemble."""
    if test in ('plain', LAST):
        return by_test[test][index]
    values = [score[index] for name, score in by_test.items()
              if name not in ('plain', LAST) and score[index] is not None]
    return max(values) if values else None


def _signed(value):
    return '—' if value is None else f'{value:+.3f}'


def _value(value):
    return '—' if value is None else f'{value:.3f}'


def tables(results, reference=None):
    """Markdown: every work dir's scores and gains over plain; then the means over the work dirs, with the margins
    over ``reference`` at the same test-time cost."""
    from sl_arch.bench.options import MODELS
    lines, sums = [], {}
    for work_dir, rows in results.items():
        for row, by_test in rows.items():
            plain_real, plain_val = by_test['plain']
            for test, (real, validation) in by_test.items():
                gain_val = None if validation is None or plain_val is None else validation - plain_val
                lines.append([osp.relpath(work_dir), MODELS[row][0] if row in MODELS else row, test, _value(real),
                              _signed(real - plain_real), _value(validation), _signed(gain_val)])
                entry = sums.setdefault((row, test), {'real': [], 'gain': [], 'margin': [], 'val_margin': []})
                entry['real'].append(real)
                entry['gain'].append(real - plain_real)
                if reference is not None:
                    ref_real = _reference_score(rows[reference], test, 0)
                    ref_val = _reference_score(rows[reference], test, 1)
                    entry['margin'].append(real - ref_real)
                    if validation is not None and ref_val is not None:
                        entry['val_margin'].append(validation - ref_val)
    every = markdown_table(['work dir', 'row', 'test', 'real PSNR-Y', 'gain over plain', 'validation PSNR-Y',
                            'gain over plain'], lines)

    def mean(values):
        return sum(values) / len(values) if values else None

    headers = ['row', 'test', 'work dirs', 'real PSNR-Y, mean', 'gain over plain, mean']
    if reference is not None:
        headers += [f'margin over {reference} at equal test cost, mean', 'each work dir', 'validation margin, mean']
    summary = []
    for (row, test), entry in sums.items():
        line = [MODELS[row][0] if row in MODELS else row, test, str(len(entry['real'])), _value(mean(entry['real'])),
                _signed(mean(entry['gain']))]
        if reference is not None:
            line += [_signed(mean(entry['margin'])), ', '.join(f'{value:+.2f}' for value in entry['margin']),
                     _signed(mean(entry['val_margin']))]
        summary.append(line)
    return every + '\n\n' + markdown_table(headers, summary)


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m sl_arch.bench.ensemble', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR', help='sl-bench --work-dir folders')
    parser.add_argument('--models', required=True, help='comma-separated finished rows')
    parser.add_argument('--reference', help='a row of --models to set the others against (e.g. SingleFrame_lean)')
    parser.add_argument('--ensembles', default=','.join(ENSEMBLES),
                        help=f'comma-separated, of {", ".join(ENSEMBLES)} (default: both), or none')
    parser.add_argument('--last-weights', action='store_true',
                        help='also test rows trained with averaged weights (train.ema_decay) with their last weights')
    parser.add_argument('--threads', type=int, default=1, help='torch threads of each test (default 1)')
    args = parser.parse_args(argv)
    rows = named_list(args.models, '--models')
    ensembles = [] if args.ensembles == 'none' else comma_list(args.ensembles)
    unknown = [name for name in ensembles if name not in ENSEMBLES]
    if unknown or not (ensembles or args.last_weights):
        raise SLError(f'--ensembles {args.ensembles}: give one or more of {", ".join(ENSEMBLES)}'
                      + ('.' if unknown else ', or add --last-weights.'))
    if args.reference is not None and args.reference not in rows:
        raise SLError(f'--reference {args.reference} is not among --models; add it there.')
    check_at_least({'--threads': args.threads})
    results = measure([osp.abspath(folder) for folder in args.work_dirs], rows,
                      ensembles + ([LAST] if args.last_weights else []), args.threads)
    print(tables(results, args.reference))


if __name__ == '__main__':
    main()
