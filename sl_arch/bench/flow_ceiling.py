"""How much a trained row's quality depends on its flow: ``python -m sl_arch.bench.flow_ceiling``.

    python -m sl_arch.bench.flow_ceiling experiments/benchmark/s0_300 experiments/benchmark/s0_600 --models SL_dis_gate

A video network gains over a single-frame one only through the other frames it aligns. This tests the final
weights of finished ``sl-bench`` rows (SemanticLens rows with flow: they take ``flows=``) on their held-out
sets of real footage three times, with three flows between neighbouring LR frames:

* **own**: the row's own estimate (DIS on the LR frames, or its flow warper), as ``sl-bench`` tests it;
* **oracle**: OpenCV's DIS on the GT frames averaged down to LR pixels, the reference flow of the benchmark's
  motion statistics and of ``sl_arch.bench.flow`` (an estimate too, but from four times the pixels);
* **zero**: no motion: every neighbour taken as it is, the network's own single-frame behaviour as far as its
  recurrence lets it.

``oracle - own`` bounds what a better flow estimator could add to these weights; ``own - zero`` is what its
alignment is worth to them. One table, PSNR-Y (BasicSR's ``calculate_psnr`` on Y, crop 0, mean of the sequence
means) per work dir, row and set, and the mean of the sets as sl-bench's "real mean" (given ``--sets``: of
those); nothing is written. Several work dirs (seeds, budgets) give one table.
"""
import argparse
import os.path as osp

from sl_arch.utils.errors import SLError, cli_entry

#: The flows each row is tested with (:func:`flows_of_clip`).
FLOWS = ('own', 'oracle', 'zero')


def flows_of_clip(kind, lqs, gts, scale=4):
    """``flows=`` of SemanticLens for one clip: ``(backward, forward)``, each (1, t - 1, 2, h, w), or None for the
    network's own estimate. ``lqs`` (t, c, h, w) LR frames, ``gts`` (t, c, H, W) GT frames in [0, 1], RGB."""
    import torch

    from sl_arch.bench.flow import clip_reference_flows
    if kind == 'own':
        return None
    t, _, h, w = lqs.shape
    if kind == 'zero':
        zero = torch.zeros(1, t - 1, 2, h, w)
        return zero, zero.clone()
    # backward[i] aligns frame i + 1 to frame i, forward[i] frame i to frame i + 1
    flows = clip_reference_flows(gts.permute(0, 2, 3, 1).numpy(), scale)
    return tuple(torch.from_numpy(flow[:, :h, :w]).permute(0, 3, 1, 2)[None].float() for flow in flows)


def psnr_with_flows(net, test_set, kind):
    """PSNR-Y (mean of the sequence means) of ``net`` on ``test_set`` (``SLVideoTestDataset`` options) with the
    flows ``kind`` (:data:`FLOWS`)."""
    import torch

    from basicsr.utils import tensor2img

    from sl_arch.bench.measure import set_metrics

    def restore(item):
        flows = flows_of_clip(kind, item['lq'], item['gt']) if item['lq'].shape[0] > 1 else None
        with torch.no_grad():
            return [tensor2img([sr]) for sr in net(item['lq'][None], flows=flows)[0]]

    return set_metrics(restore, test_set)['psnr']['mean']


def row_network(record, checkpoint):
    """The row's trained network on the CPU, or SLError where it cannot take ``flows=``."""
    from sl_arch.bench.validate import trained_network
    network_g = record['options']['test']['network_g']
    if network_g.get('type') != 'SemanticLens':
        raise SLError(f'{network_g.get("type")} takes no given flows; flow_ceiling tests SemanticLens rows.')
    if not network_g.get('use_flow', True):
        raise SLError(f'{record["options"]["test"]["name"]} was trained without flow (use_flow: false): given flows '
                      'would align what it never aligned; drop the row.')
    return trained_network(record, checkpoint)


def ceiling_rows(work_dir, rows, sets=None):
    """``[(row, set name, {flow kind: PSNR-Y})]`` of the finished ``rows`` of one sl-bench ``work_dir``, on their
    real test sets (or ``sets``, names of their test sets), then ``(row, None, means over those sets)``."""
    from sl_arch.bench.options import real_test_sets
    from sl_arch.bench.runs import final_checkpoint
    from sl_arch.bench.validate import named_finished_rows
    finished = named_finished_rows(work_dir, rows)
    results = []
    for row in rows:
        record = finished[row]
        net = row_network(record, final_checkpoint(work_dir, f'bench_{row}'))
        test_sets = {options['name']: options for options in record['options']['test']['datasets'].values()}
        wanted = sets or [name for name in real_test_sets() if name in test_sets]
        unknown = [name for name in wanted if name not in test_sets]
        if unknown:
            raise SLError(f'--sets {",".join(unknown)}: {row} was not tested on it; its sets: {", ".join(test_sets)}.')
        per_set = []
        for name in wanted:
            scores = {kind: psnr_with_flows(net, test_sets[name], kind) for kind in FLOWS}
            print(f'[flow_ceiling] {row} on {name}: '
                  + ', '.join(f'{kind} {value:.2f}' for kind, value in scores.items()), flush=True)
            per_set.append((row, name, scores))
        results += per_set + [(row, None, {kind: sum(scores[kind] for *_, scores in per_set) / len(per_set)
                                           for kind in FLOWS})]
    return results


def table(results):
    """Markdown table of ``{work dir: ceiling_rows(...)}``; each row's mean over its sets in bold."""
    from sl_arch.bench.common import markdown_table
    from sl_arch.bench.options import MODELS, held_out_label
    lines = []
    for work_dir, rows in results.items():
        for row, name, scores in rows:
            cells = [f'{scores[kind]:.2f}' for kind in FLOWS] + [f'{scores["oracle"] - scores["own"]:+.2f}',
                                                                  f'{scores["own"] - scores["zero"]:+.2f}']
            if name is None:
                cells = [f'**{cell}**' for cell in cells]
            lines.append([work_dir, MODELS[row][0] if row in MODELS else row,
                          '**mean**' if name is None else held_out_label(name)] + cells)
    return markdown_table(['work dir', 'row', 'held-out set', 'own flow', 'oracle flow', 'zero flow', 'oracle - own',
                           'own - zero'], lines)


@cli_entry
def main(argv=None):
    import torch

    from sl_arch.bench.common import comma_list, named_list
    parser = argparse.ArgumentParser(prog='python -m sl_arch.bench.flow_ceiling', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('work_dirs', nargs='+', metavar='WORK_DIR',
                        help='sl-bench --work-dir folders with finished rows')
    parser.add_argument('--models', required=True, help='comma-separated finished SemanticLens rows with flow')
    parser.add_argument('--sets', help='comma-separated held-out sets (default: the real-footage test sets)')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = named_list(args.models, '--models')
    sets = comma_list(args.sets) if args.sets else None
    results = {osp.relpath(work_dir): ceiling_rows(osp.abspath(work_dir), rows, sets) for work_dir in args.work_dirs}
    print(table(results))


if __name__ == '__main__':
    main()
