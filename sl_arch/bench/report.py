"""The ``sl-bench`` report: a markdown table, the verdict in plain sentences, a plot, the raw JSON.

Everything here is computed from the measured rows (``results.json``); nothing is typed in by hand.
"""
import json
import os
import os.path as osp

from sl_arch.bench.common import markdown_table
from sl_arch.bench.measure import LONG_CLIP_FRAMES
from sl_arch.bench.options import (DATA_ROOT, DESIGN_ROWS, SINGLE_FRAME_ROWS, TEST_SETS, TRAIN_CHANGES, TRAIN_FOLDER,
                                   VALIDATION_SET, held_out_label, is_single_frame, real_test_sets, reference_keys,
                                   row_budget, weights_key)
from sl_arch.utils.errors import SLError
from sl_arch.utils.files import atomic_write, check_writable, write_json, write_text

REPORT_FILES = ('results.json', 'psnr_vs_ms.png', 'report.md')


def format_number(value, digits):
    """``value`` with ``digits`` decimals, or a dash for a missing value."""
    return '—' if value is None else f'{value:.{digits}f}'


def psnr(row, dataset):
    """Mean PSNR-Y of ``row`` on ``dataset``, or None."""
    metrics = (row.get('metrics') or {}).get(dataset)
    return metrics['psnr']['mean'] if metrics else None


def real_psnr(row):
    """Mean PSNR-Y over the held-out real-footage sets (each set weighs the same), or None."""
    values = [psnr(row, name) for name in real_test_sets()]
    return None if not values or None in values else sum(values) / len(values)


def plural(count, noun):
    """``'1 iteration'``, ``'2 iterations'``."""
    return f'{count} {noun}' + ('' if count == 1 else 's')


def seconds_per_iteration(row):
    """Training seconds per iteration of ``row`` (its clock's seconds), or None."""
    return (row.get('train') or {}).get('seconds_per_iteration')


def iterations(row):
    return (row.get('train') or {}).get('iterations')


def long_clip_drop(row):
    """dB the row loses deep into a long clip (:func:`sl_arch.bench.measure.long_clip_drop`), or None."""
    return (row.get('long_clip') or {}).get('drop_db')


#: A long-clip drop above this many dB is named in the verdict.
LONG_CLIP_TOLERANCE = 0.3


# ---------------------------------------------------------------------------------- verdict
def verdict(rows, clock='CPU'):
    """Plain sentences computed from the measured rows: SemanticLens against each reference.

    The rows of :data:`DESIGN_ROWS` (the best design at 300 CPU s) come first, each against every reference; then the
    full network (row ``SemanticLens``) against every reference, and the other ``SL_`` rows as its ablations. Without
    the full network, every ``SL_`` row is set against every reference.
    """
    by_key = {row['key']: row for row in rows if not row.get('error')}
    sl = by_key.get('SemanticLens')
    baselines = [by_key[key] for key in reference_keys(by_key)]
    designs = [by_key[key] for key in DESIGN_ROWS if key in by_key and real_psnr(by_key[key]) is not None]
    if sl is None or real_psnr(sl) is None:
        variants = designs + [row for key, row in by_key.items()
                              if key.startswith('SL_') and key not in DESIGN_ROWS and real_psnr(row) is not None]
        if variants and baselines:  # a run of variants only: each against the single-frame network and the rest
            return [line for variant in variants for line in variant_sentences(variant, baselines, clock)] \
                + long_clip_sentences(rows)
        return ['- SemanticLens has no result in this run, so there is no verdict.']
    lines = ([line for design in designs if baselines for line in variant_sentences(design, baselines, clock)]
             + [comparison_sentence(sl, baseline, clock) for baseline in baselines] + long_clip_sentences(rows))
    if 'BasicVSR' in by_key:
        lines.append(speed_sentence(sl, by_key['BasicVSR'], clock))
    if 'bicubic' in by_key:
        lines.append(bicubic_sentence(sl, by_key['bicubic'], baselines))
    if 'bilinear' in by_key:
        lines += starting_point_sentences(by_key['bilinear'], [row for row in baselines
                                                                  if not is_single_frame(row['key'])])
    lines += [ablation_sentence(sl, row) for row in rows
              if row['key'].startswith('SL_') and row['key'] in by_key and row['key'] not in DESIGN_ROWS]
    lines.append('- One seed per model: the run-to-run spread was not measured, so margins of a few hundredths '
                 'of a dB are within noise.')
    return lines


def long_clip_sentences(rows):
    """A sentence naming the rows that lose more than :data:`LONG_CLIP_TOLERANCE` dB deep into a long clip."""
    losing = [f'{row["label"]} ({long_clip_drop(row):.2f} dB)' for row in rows
              if not row.get('error') and (long_clip_drop(row) or 0) > LONG_CLIP_TOLERANCE]
    if not losing:
        return []
    return [f'- **Long clips**: on the first held-out clip played forth and back to {LONG_CLIP_FRAMES} frames, '
            f'{", ".join(losing)} lose that much PSNR-Y in their worst pass over the median pass (the same frames '
            'each pass): their quality falls the longer they run, which the test sets (16-64 frames) do not show. '
            'Upscale long videos with them in short windows only (`sl-infer --chunk`, 32 frames by default); a '
            'SemanticLens trained with `network_g.state_bound: 1.0` keeps its propagated features bounded.']


def margins(sl, other):
    """``{dataset: SemanticLens PSNR-Y - other's}`` over the test sets both have."""
    return {name: psnr(sl, name) - psnr(other, name) for name in (*TEST_SETS, VALIDATION_SET)
            if psnr(sl, name) is not None and psnr(other, name) is not None}


def margin_text(deltas):
    return ', '.join(f'{delta:+.2f} dB on {held_out_label(name)}' for name, delta in deltas.items())


def lead_text(row, other):
    """``row``'s real-footage PSNR-Y against ``other``'s, as 'ahead by 0.30 dB' or 'behind by 0.30 dB'."""
    real = real_psnr(row) - real_psnr(other)
    return f'{"ahead" if real > 0 else "behind"} by {abs(real):.2f} dB'


def single_frame_name(single):
    """' (its label)' for a single-frame reference other than the plain rows (e.g. its weights averaged), else ''."""
    return '' if single['key'] in SINGLE_FRAME_ROWS else f' ({single["label"]})'


def variant_sentences(variant, baselines, clock):
    """A SemanticLens variant against each reference, its label (often 300 characters and more) given once."""
    lines = [f'- **{variant["label"]}** ({variant["params"] / 1e6:.3f}M parameters, '
             f'{plural(iterations(variant), "iteration")}) against:']
    for baseline in baselines:
        by = lead_text(variant, baseline)
        if is_single_frame(baseline['key']):
            lines.append(f'  - **the single-frame network of {baseline["params"] / 1e6:.3f}M parameters'
                         f'{single_frame_name(baseline)}, '
                         f'{plural(iterations(baseline), "iteration")} at equal {clock} time: {by} PSNR-Y on real '
                         f'held-out footage** ({margin_text(margins(variant, baseline))}).')
        else:
            lines.append(f'  - {baseline["label"]}, {plural(iterations(baseline), "iteration")} in the same budget: '
                         f'{by} on real footage ({margin_text(margins(variant, baseline))}).')
    return lines


def comparison_sentence(sl, baseline, clock):
    """SemanticLens (the ``sl`` row) against one reference row: the single-frame network, or a video baseline."""
    if is_single_frame(baseline['key']):
        return single_frame_sentence(sl, baseline, clock)
    return baseline_sentence(sl, baseline)


def single_frame_sentence(sl, single, clock):
    """SemanticLens (the ``sl`` row) against a single-frame network, both sizes stated."""
    return (f'- **Against the single-frame network of {single["params"] / 1e6:.3f}M parameters'
            f'{single_frame_name(single)} at equal {clock} time** '
            f'(SemanticLens: {sl["params"] / 1e6:.3f}M): SemanticLens is **{lead_text(sl, single)} PSNR-Y on real '
            f'held-out footage** ({margin_text(margins(sl, single))}). It did '
            f'{plural(iterations(sl), "iteration")}, the single-frame network {iterations(single)}.')


def baseline_sentence(sl, row):
    """SemanticLens (the ``sl`` row) against a video baseline trained on the same budget."""
    return (f'- Against {row["label"]} ({plural(iterations(row), "iteration")} in the same budget): SemanticLens '
            f'{lead_text(sl, row)} on real footage '
            f'({margin_text(margins(sl, row))}).')


def speed_sentence(sl, basicvsr, clock):
    ratio = seconds_per_iteration(sl) / seconds_per_iteration(basicvsr)
    return (f'- Training cost: SemanticLens takes {seconds_per_iteration(sl):.2f} {clock} s per iteration, '
            f'BasicVSR {seconds_per_iteration(basicvsr):.2f} at matched parameters outside SPyNet '
            f'({sl["params"] / 1e6:.3f}M vs {basicvsr["params_no_spynet"] / 1e6:.3f}M): a ratio of {ratio:.2f}; '
            f'test time per frame {sl["ms_per_frame"] / basicvsr["ms_per_frame"]:.2f}x BasicVSR\'s.')


def bicubic_sentence(sl, bicubic, baselines):
    below = [row['label'] for row in baselines if real_psnr(row) is not None and real_psnr(row) <= real_psnr(bicubic)]
    return (f'- SemanticLens − bicubic on real footage: {real_psnr(sl) - real_psnr(bicubic):+.2f} dB.'
            + (f' Not above bicubic on real footage after this budget: {", ".join(below)}.' if below else ''))


def starting_point_sentences(bilinear, baselines, tolerance=0.05):
    """Which BasicSR models still give their bilinear starting point (every set within ``tolerance`` dB)."""
    still = [row['label'] for row in baselines
             if all(abs(delta) < tolerance for delta in margins(row, bilinear).values())]
    if not still:
        return []
    return [f'- Still at their starting point: {", ".join(still)} score within {tolerance} dB of bilinear upsampling '
            'on every held-out set. They add their output to the bilinearly upsampled frame and start with '
            'near-zero outputs; this budget did not take them away from it, so their rows measure how fast they '
            'leave it, not how well they align frames.']


def ablation_sentence(sl, row):
    ratio = seconds_per_iteration(row) / seconds_per_iteration(sl)
    return (f'- {row["label"]}: {real_psnr(row) - real_psnr(sl):+.2f} dB on real footage against the full model '
            f'({margin_text(margins(row, sl))}), {ratio:.2f}x its time per iteration.')


# ---------------------------------------------------------------------------------- report text
def results_table(rows, info):
    """The markdown table: sizes, training iterations and cost, test cost, PSNR-Y / SSIM-Y per held-out set."""
    clock = info['budget']['clock'].upper()
    device = 'GPU' if info['versions']['cuda'] else 'CPU'
    headers = (['model', 'params (M)', 'iterations', f'train {clock} s / iter', 'GFLOPs / frame',
                f'{device} ms / frame', 'peak test MiB', 'long-clip drop (dB)']
               + [f'{held_out_label(name)} PSNR-Y / SSIM-Y' for name in info['test_sets']]
               + ['**real mean PSNR-Y**'])
    table = []
    for row in rows:
        if row.get('error'):
            table.append([row['label'], f'failed: {row["error"]}'] + [''] * (len(headers) - 2))
            continue
        cells = [row['label'], format_number(row['params'] / 1e6 if row['params'] else None, 3),
                 str(iterations(row) or '—'), format_number(seconds_per_iteration(row), 2),
                 format_number(row.get('gflops_per_frame'), 2), format_number(row.get('ms_per_frame'), 1),
                 format_number(row.get('peak_mib'), 0), format_number(long_clip_drop(row), 2)]
        for name in info['test_sets']:
            metrics = row['metrics'].get(name)
            cells.append(f'{metrics["psnr"]["mean"]:.2f} / {metrics["ssim"]["mean"]:.4f}' if metrics else '—')
        cells.append(f'**{format_number(real_psnr(row), 2)}**')
        table.append(cells)
    return markdown_table(headers, table)


def training_clips(info):
    """What the training folder holds: the clips found there, named as the zoo's mix
    (``scripts/zoo_data.sh``) when it is the default ``--data-root``'s."""
    if osp.normpath(info['train_gt']) == osp.normpath(osp.join(DATA_ROOT, TRAIN_FOLDER, 'GT')):
        return f"synthetic clips + the demo footage's training frames, `{info['data_script']}`; {info['train_clips']}"
    return info['train_clips']


def arithmetic(budget):
    """How every model trained: float32 or mixed precision, default or channels-last weights."""
    precision = {'bf16': 'bfloat16 mixed precision (`train.autocast: bf16`)',
                 'fp16': 'float16 mixed precision (`train.autocast: fp16`)'}.get(budget.get('autocast'), 'float32')
    order = ', channels-last weights (`train.channels_last`)' if budget.get('channels_last') else ''
    return f'training in {precision}{order}, tests in float32'


def budget_section(rows, info):
    """What every model shared: data, budget, optimiser, pretrained flow, sizes."""
    budget = info['budget']
    patch = budget['gt_size'] // 4
    sizes = '\n'.join(f'- {row["label"]}: `{json.dumps(network_sizes(row["network_g"]))}`'
                      + (f'; its smallest input is {row["min_input_size"]} px, so the {patch}-px training patches '
                         'and smaller test clips are padded to it (`min_input_size`)'
                         if (row.get('min_input_size') or 0) > patch else '')
                      for row in rows if row.get('network_g')
                      and (row['kind'] != 'SemanticLens' or row['key'] in DESIGN_ROWS))
    tests = ', '.join(f'{held_out_label(name)} (`{folder}`)' for name, folder in info['test_sets'].items())
    measured = ('CPU time of the one-thread training process, `time.process_time`, data loading included'
                if budget['clock'] == 'cpu' else 'GPU seconds: wall time with CUDA synchronized')
    flow = ('every flow-using model starts from the same pretrained flow (model_zoo/README.md): BasicVSR, IconVSR '
            'and BasicVSR++ load `spynet_synthetic_dis.pth` into BasicSR\'s SPyNet (`spynet_path`), SemanticLens '
            'loads `slflow_tiny_synthetic_dis.pth` into its flow warper (`flow_load_path`); rows with DIS flow '
            '(`flow_estimator: dis`) take OpenCV\'s DIS optical flow instead, nothing to load; EDVR and the '
            'single-frame network have no flow; IconVSR\'s EDVR feature extractor starts untrained'
            if budget['pretrained_flow'] else 'every model trains from scratch (no pretrained flow)')
    own = {}  # the rows' own values (ROW_BUDGETS, sl-bench --lr ROW=..., --num-frame ROW=...)
    keys = [row['key'] for row in rows if row.get('network_g')] or list(budget.get('row_changes', {}))
    budgets = {key: row_budget(budget, key) for key in keys}
    for name in ('lr', 'batch_size', 'num_frame', 'gt_size'):
        text = ', '.join(f'{key}: {values[name]:g}' for key, values in budgets.items() if values[name] != budget[name])
        own[name] = f' ({text})' if text else ''
    averaged = ', '.join(f'{key}: {TRAIN_CHANGES[key]["ema_decay"]:g}' for key in keys
                         if weights_key(key) == 'params_ema')
    ema = (f'EMA of the weights ({averaged}; tested with the averaged weights), no EMA for the others' if averaged
           else 'no EMA')
    return f"""## Same budget for every model

- **{budget['seconds']:g} {budget['clock'].upper()} seconds of training per model**
  ({measured}): `train.{budget['clock']}_seconds`; training ends after
  the iteration that passes it, then the final weights are tested. The learning rate follows a cosine from
  {budget['lr']:g}{own['lr']} to {budget['eta_min']:g} over the budget's seconds (`BudgetCosineLR`), so every model
  ends annealed whatever its speed.
- Training data: `{info['train_gt']}` ({training_clips(info)}),
  {info.get('degradation', 'BI')} x4 (training and test sets); batch {budget['batch_size']}{own['batch_size']}, {budget['num_frame']}{own['num_frame']} frames per clip, GT
  patch {budget['gt_size']} px{own['gt_size']} (LR {budget['gt_size'] // 4} px), flips and rotations, seed {budget['seed']}; Adam (betas 0.9, 0.99); Charbonnier
  loss; {ema}; flow / SPyNet learning rate x{budget['flow_lr_mul']}; {arithmetic(budget)}.
- Held-out test sets, never trained on: {tests}.
- Pretrained flow: {flow}.
- SemanticLens: `PRESETS['{budget['preset']}']`; the ablations switch off one part each; a design row (listed
  below) changes the preset as its options say.
- Baselines are sized to SemanticLens' total parameter count, not counting BasicSR's SPyNet (1.44M
  parameters by itself), so BasicVSR, IconVSR and BasicVSR++ are larger in total. Each row's network options:
{sizes}
"""


def motion_section(info):
    """How much each held-out set moves (:func:`sl_arch.bench.measure.set_motion`): where time can help."""
    from sl_arch.bench.measure import MOVING_PX
    motion = info.get('motion')
    if not motion:
        return ''
    table = markdown_table(
        ['held-out set', 'median motion (LR px / frame)', f'pixels moving > {MOVING_PX} LR px'],
        [[held_out_label(name), format_number(values['median_px'], 2),
          '—' if values['moving_share'] is None else f'{100 * values["moving_share"]:.0f}%']
         for name, values in motion.items()])
    return f"""## How much the held-out sets move

A pixel that keeps its place brings the same samples in every frame: other frames can add detail
only where pixels move (by fractions of an LR pixel). OpenCV's DIS flow between consecutive GT
frames, averaged down to LR pixels:

{table}

"""


def network_sizes(network_opt):
    """The size options of a ``network_g`` (without its type and pretrained-weight paths)."""
    sizes = {key: value for key, value in network_opt.items() if key != 'type' and not key.endswith('_path')}
    return network_sizes(sizes['network']) if 'network' in sizes else sizes


def read_back_note(rows):
    """A sentence naming the rows read back from finished runs of an earlier invocation, if any."""
    read_back = [f'{row["label"]} ({row["read_back"]})' for row in rows if row.get('read_back')]
    if not read_back:
        return ''
    return (' Read back from finished runs with the same option files, not trained again by this invocation: '
            + ', '.join(read_back) + ' (their training figures are those runs\'.)')


def markdown_report(rows, info):
    """The whole ``report.md``."""
    versions, clock = info['versions'], info['budget']['clock'].upper()
    return f"""# sl-bench ({info['mode']} mode): SemanticLens against an equal-size single-frame network and BasicSR's video models at equal {clock} time

Command: `{info['command']}` — started {info['started']}, {info['wall_minutes']:.1f} minutes in all
({info['jobs']} training job(s) at a time, {info['threads']} thread(s) each).{read_back_note(rows)}

All numbers below were measured by this run, on one machine: {versions['cuda'] or versions['cpu']},
{versions['cpu_count']} CPU cores ({info['load']}).

{results_table(rows, info)}

PSNR-Y / SSIM-Y: BasicSR's `calculate_psnr` / `calculate_ssim` on the Y channel, crop border 0, of every frame
of each held-out set, as `sl-test` writes them to `results/<run>/metrics_<set>.json`; each set's value is the
mean of its sequence means, and "real mean" the mean of the real-footage sets. The bicubic and bilinear rows
use the same functions on MATLAB-bicubic upsampling and on the bilinear upsampling (`F.interpolate`) that
BasicSR's video models add their output to. Iterations and {clock} s / iter come from each run's `train_time.json`.
GFLOPs / frame, ms / frame and peak memory: one test forward over {info['measure']}, each model alone in a
fresh process after the training ({info['threads']} thread(s), median of {info['budget']['repeats']} runs after one
warm-up); EDVR runs one window of its `num_frame` frames per output frame. Long-clip drop: the same clip played
forth and back to {LONG_CLIP_FRAMES} frames in one forward; PSNR-Y of the median pass minus the worst (the same
frames each pass; near 0 for a network whose quality holds).

## Verdict

{chr(10).join(verdict(rows, clock))}

![PSNR-Y on real footage against time per frame](psnr_vs_ms.png)

{motion_section(info)}{budget_section(rows, info)}
## Versions

Python {versions['python']}, torch {versions['torch']}, basicsr {versions['basicsr']}, sl_arch {versions['sl_arch']}
(commit {versions['commit']}), {versions['platform']}. Option files, logs and checkpoints: `{info['work_dir']}/`;
raw numbers (per sequence too): `results.json`.
"""


# ---------------------------------------------------------------------------------- files
def legend_label(label, width=60):
    """A row's label for the plot's legend: up to its first colon (``'SemanticLens lean: DIS flow, ...'``), cut to
    ``width`` characters at a space, with an ellipsis; the report's table has the whole label."""
    short = label.split(':')[0]
    return short if len(short) <= width else short[:width - 1].rsplit(' ', 1)[0].rstrip(' ,') + '…'


def save_plot(rows, path):
    """Scatter of mean real-footage PSNR-Y against test time per frame: numbered points, labels in a legend."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(11, 5.5))
    plotted = [row for row in rows if not row.get('error') and row.get('ms_per_frame') is not None
               and real_psnr(row) is not None]
    for number, row in enumerate(plotted, 1):
        colour = ('tab:red' if row['key'] == 'SemanticLens' or row['key'] in DESIGN_ROWS
                  else 'tab:orange' if row['key'].startswith('SL_')
                  else 'black' if row['kind'] in ('bicubic', 'bilinear', 'SLFrameWise') else 'tab:blue')
        axes.scatter(row['ms_per_frame'], real_psnr(row), color=colour, s=40, zorder=3,
                     label=f'{number}  {legend_label(row["label"])}')
        axes.annotate(str(number), (row['ms_per_frame'], real_psnr(row)), textcoords='offset points',
                      xytext=(4, 4), fontsize=8)
    axes.set_xscale('log')
    axes.set_xlabel('ms per frame (log scale)')
    axes.set_ylabel('mean PSNR-Y on real held-out footage (dB)')
    axes.set_title('Equal training time: red SemanticLens and its best design, orange other variants, black '
                   'references, blue BasicSR', fontsize=10)
    axes.grid(True, alpha=0.3, which='both')
    axes.legend(fontsize=8, loc='upper left', bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=110, bbox_inches='tight')  # the legend, right of the axes, whole
    plt.close(figure)


def check_report_folder(out_dir, names=REPORT_FILES):
    """Refuse an ``--out`` folder where writing the report would replace files we did not write.

    The report files ``names`` are ours when ``results.json`` is one of our results (it holds
    ``info`` and ``rows``).

    Raises:
        SLError: naming the folder, the files in the way and the fix.
    """
    check_writable(out_dir, '--out')
    present = [name for name in names if osp.lexists(osp.join(out_dir, name))]
    if not present:
        return
    try:
        with open(osp.join(out_dir, 'results.json'), encoding='utf-8') as handle:
            ours = {'info', 'rows'} <= set(json.load(handle))
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise SLError(f'--out {out_dir} holds {", ".join(present)} that sl_arch did not write; '
                      'choose another --out folder.')


def write_outputs(out_dir, rows, info):
    """Write ``results.json``, ``psnr_vs_ms.png`` and ``report.md`` to ``out_dir``; returns the report text."""
    os.makedirs(out_dir, exist_ok=True)
    write_json(osp.join(out_dir, 'results.json'), {'info': info, 'rows': rows})
    atomic_write(osp.join(out_dir, 'psnr_vs_ms.png'), lambda tmp: save_plot(rows, tmp), suffix='.tmp.png')
    text = markdown_report(rows, info)
    write_text(osp.join(out_dir, 'report.md'), text)
    return text
