"""PSNR-Y against the training budget, across ``sl-bench`` reports: ``python -m sl_arch.bench.curve``.

    python -m sl_arch.bench.curve results/benchmark/xeon_s*_300_s19c results/benchmark/xeon_s*_600_s20 \\
        --models SingleFrame_lean,SL_dis_gate --reference SingleFrame_lean --out results/benchmark/curve

Each report folder (``sl-bench --out``) holds the ``results.json`` of one run. For every trained row it gives
the row's budget (the seconds of ``train_time.json``), the run's seed, and the row's PSNR-Y on the real held-out
sets (their mean, the report's "real mean") and on the validation set where one was tested. A row trained once and
read back by several reports (same row, budget and seed) counts once. The table gives each model's score at each
budget (mean over the seeds, then each seed) and its margin over the reference row of the same seed and budget; with
a reference, a second table splits that margin by real sequence (footage that does not move gives a video network
nothing more to draw from than its frame: there the margin stays near 0). The plot draws the real-footage PSNR-Y
against the budget, a line through each model's means and a dot per seed.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import textwrap

from sl_arch.bench.common import markdown_table, named_list
from sl_arch.bench.report import check_report_folder, psnr, real_psnr
from sl_arch.bench.options import TEST_SETS, VALIDATION_SET, real_test_sets
from sl_arch.utils.errors import SLError, cli_entry
from sl_arch.utils.files import atomic_write, write_json, write_text

CURVE_FILES = ('results.json', 'budget_curve.png', 'report.md')


def read_report(folder):
    """The ``results.json`` of an ``sl-bench`` report folder.

    Raises:
        SLError: the folder holds no readable ``sl-bench`` results.
    """
    path = osp.join(folder, 'results.json')
    try:
        with open(path, encoding='utf-8') as handle:
            report = json.load(handle)
    except (OSError, ValueError) as error:
        raise SLError(f'{folder}: no readable results.json of sl-bench ({error.__class__.__name__}); pass the folders '
                      'that sl-bench --out wrote.') from None
    if not isinstance(report, dict) or not {'info', 'rows'} <= set(report) or 'budget' not in report['info']:
        raise SLError(f'{path} is not the results.json of an sl-bench run; pass the folders that sl-bench --out wrote.')
    return report


def budget_points(folders, models):
    """Every trained row of ``models`` in the reports: ``{(key, budget seconds, seed): point}``.

    A point holds ``key``, ``label``, ``budget``, ``seed``, ``iterations``, ``real`` (mean PSNR-Y of the real
    held-out sets), ``sequences`` (``{(set, sequence): PSNR-Y}`` of the real sets' sequences, where the report has
    them), ``validation`` (or None) and ``report`` (the folder it was read from).

    Raises:
        SLError: two reports disagree about the same training, or a model is in none of them.
    """
    points = {}
    for folder in folders:
        report = read_report(folder)
        seed = report['info']['budget'].get('seed')
        for row in report['rows']:
            train = row.get('train') or {}
            if row.get('key') not in models or row.get('error') or not train.get('budget_seconds'):
                continue
            point = dict(key=row['key'], label=row['label'], budget=train['budget_seconds'], seed=seed,
                         iterations=train.get('iterations'), real=real_psnr(row), sequences=sequence_psnr(row),
                         validation=psnr(row, VALIDATION_SET), report=folder)
            if point['real'] is None:
                continue
            name = (point['key'], point['budget'], seed)
            seen = points.setdefault(name, point)
            if abs(seen['real'] - point['real']) > 1e-6:
                raise SLError(f'{point["key"]} at {point["budget"]:g} s, seed {seed}: {seen["report"]} and {folder} '
                              f'disagree ({seen["real"]:.3f} against {point["real"]:.3f} dB; tested again?); pass '
                              'only one of them.')
    missing = [key for key in models if not any(name[0] == key for name in points)]
    if missing:
        raise SLError(f'--models {",".join(missing)}: no trained row of that name in the reports given.')
    return points


def sequence_psnr(row):
    """``{(set, sequence): PSNR-Y}`` of ``row`` on the real held-out sets' sequences (none where not recorded)."""
    metrics = row.get('metrics') or {}
    return {(name, sequence): value for name in real_test_sets()
            for sequence, value in (((metrics.get(name) or {}).get('psnr') or {}).get('sequences') or {}).items()}


def _mean(values):
    return statistics.mean(values) if values else None


def _signed(value):
    return '—' if value is None else f'{value:+.2f}'


def _by_budget(points, key):
    """``(budget, [key's points at that budget, in seed order])`` for each budget of ``key``, ascending."""
    for budget in sorted({name[1] for name in points if name[0] == key}):
        seeds = sorted((name[2] for name in points if name[:2] == (key, budget)), key=str)
        yield budget, [points[key, budget, seed] for seed in seeds]


def _reference_pairs(points, mine, reference):
    """``(point, the reference's point of the same budget and seed)`` for each point of ``mine`` that has one."""
    pairs = [(point, points.get((reference, point['budget'], point['seed']))) for point in mine]
    return [(point, ref) for point, ref in pairs if ref is not None]


def curve_table(points, models, reference=None):
    """Markdown: one line per model and budget; real-footage PSNR-Y (mean over seeds, then each seed with its
    iterations) and, with a ``reference``, the margin over it on the real sets and on the validation set."""
    rows = []
    for key in models:
        for budget, mine in _by_budget(points, key):
            line = [mine[0]['label'], f'{budget:g}', f'{_mean([p["real"] for p in mine]):.2f}',
                    ', '.join(f'{p["real"]:.2f} ({p["iterations"]})' for p in mine)]
            if reference == key:
                line += ['—', '—', '—']
            elif reference:
                pairs = _reference_pairs(points, mine, reference)
                margins = [p['real'] - ref['real'] for p, ref in pairs]
                val = [p['validation'] - ref['validation'] for p, ref in pairs
                       if p['validation'] is not None and ref['validation'] is not None]
                line += [_signed(_mean(margins)), ', '.join(_signed(m) for m in margins) or '—', _signed(_mean(val))]
            rows.append(line)
    headers = ['model', 'CPU s', 'real PSNR-Y, mean', 'each seed (iterations)']
    if reference:
        headers += ['margin', 'each seed', 'validation margin']
    return markdown_table(headers, rows)


def sequence_table(points, models, reference):
    """Markdown: the margin over ``reference`` (same seed and budget) of each other model on each real held-out
    sequence, mean over the seeds that have both; the real mean's margin last. None where no point has sequences."""
    names = []
    for point in points.values():
        names += [name for name in point['sequences'] if name not in names]
    if not names:
        return None
    rows = []
    for key in models:
        if key == reference:
            continue
        for budget, mine in _by_budget(points, key):
            pairs = _reference_pairs(points, mine, reference)
            if not pairs:
                continue
            line = [pairs[0][0]['label'], f'{budget:g}', str(len(pairs))]
            for name in names:
                line.append(_signed(_mean([point['sequences'][name] - ref['sequences'][name] for point, ref in pairs
                                           if name in point['sequences'] and name in ref['sequences']])))
            rows.append(line + [_signed(_mean([point['real'] - ref['real'] for point, ref in pairs]))])
    headers = (['model', 'CPU s', 'seeds'] + [f'{TEST_SETS[name]["label"]}: {sequence}' for name, sequence in names]
               + ['real mean'])
    return markdown_table(headers, rows)


def save_curve_plot(points, models, path):
    """Real-footage PSNR-Y against the budget: a line through each model's means, a dot per seed."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5.5))
    for number, key in enumerate(models):
        colour = f'C{number % 10}'
        mine = [point for name, point in points.items() if name[0] == key]
        budgets = sorted({point['budget'] for point in mine})
        axes.plot(budgets, [_mean([p['real'] for p in mine if p['budget'] == b]) for b in budgets], '-o',
                  color=colour, label=textwrap.fill(mine[0]['label'], 70), zorder=3)
        axes.scatter([p['budget'] for p in mine], [p['real'] for p in mine], color=colour, s=14, alpha=0.5, zorder=2)
    axes.set_xscale('log', base=2)
    budgets = sorted({name[1] for name in points})
    axes.set_xticks(budgets, [f'{b:g}' for b in budgets])
    axes.set_xlabel('training budget, CPU seconds (log scale)')
    axes.set_ylabel('mean PSNR-Y on real held-out footage (dB)')
    axes.set_title('Equal training time at several budgets: mean of seeds (line), each seed (dots)')
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7, loc='best')
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def check_out_folder(out_dir):
    """Refuse an ``--out`` folder whose files are not an earlier curve of ours (an ``sl-bench`` report included).

    Raises:
        SLError: naming the folder and the fix.
    """
    check_report_folder(out_dir, CURVE_FILES)  # files that sl_arch did not write
    if osp.exists(osp.join(out_dir, 'results.json')) and 'reports' not in read_report_info(out_dir):
        raise SLError(f'--out {out_dir} holds the report of an sl-bench run; choose another --out folder.')


def read_report_info(folder):
    with open(osp.join(folder, 'results.json'), encoding='utf-8') as handle:
        return json.load(handle)['info']


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m sl_arch.bench.curve', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('reports', nargs='+', help='report folders of sl-bench runs (their --out)')
    parser.add_argument('--models', required=True, help='comma-separated sl-bench rows to draw')
    parser.add_argument('--reference', help='a row of --models whose score at the same seed and budget the '
                                            'others are compared with (e.g. SingleFrame_lean)')
    parser.add_argument('--out', help='folder for report.md, budget_curve.png and results.json (default: print only)')
    args = parser.parse_args(argv)
    models = named_list(args.models, '--models')
    if args.reference and args.reference not in models:
        raise SLError(f'--reference {args.reference} is not one of --models; add it there.')
    if args.out:
        check_out_folder(args.out)
    points = budget_points(args.reports, models)
    text = ('Real held-out PSNR-Y (mean of the real sets) against the training budget, from '
            + ', '.join(f'`{folder}`' for folder in args.reports) + '.\n\n'
            + curve_table(points, models, args.reference) + '\n')
    by_sequence = sequence_table(points, models, args.reference) if args.reference else None
    if by_sequence:
        text += (f'\nMargin over {args.reference} on each real held-out sequence (mean over the seeds; the real mean '
                 'weighs each set the same, and each set its sequences the same):\n\n' + by_sequence + '\n')
    print(text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        rows = [dict(point, sequences={f'{name}/{sequence}': value
                                       for (name, sequence), value in point['sequences'].items()})
                for point in points.values()]
        write_json(osp.join(args.out, 'results.json'),
                   {'info': {'reports': args.reports, 'models': models, 'reference': args.reference}, 'rows': rows})
        atomic_write(osp.join(args.out, 'budget_curve.png'), lambda tmp: save_curve_plot(points, models, tmp),
                     suffix='.tmp.png')
        write_text(osp.join(args.out, 'report.md'), f'# Budget curve\n\n{text}\n![PSNR-Y against the budget](budget_curve.png)\n')


if __name__ == '__main__':
    main()
