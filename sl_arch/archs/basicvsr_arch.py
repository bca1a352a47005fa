"""BasicVSR with a choice of flow: BasicSR's SpyNet, or OpenCV's DIS as SemanticLens can use.

SemanticLens' best variants on real footage take their flow from OpenCV's DIS
(``flow_estimator: dis``, :class:`sl_arch.archs.prealign_arch.SLDISFlow`), while BasicSR's
BasicVSR always builds a SpyNet, which on the CPU is most of its training time (2.74 CPU s an
iteration at 0.48M parameters outside SpyNet against SemanticLens tiny's 0.65, README, sl-bench)
and follows real camera motion worse than DIS (end-point error 2.68 against 0.68 LR px on the
moving part of bikes, ``model_zoo/README.md``). ``SLBasicVSR`` is BasicSR's network unchanged,
with the flow estimator an option, so a comparison can give BasicVSR the same flow (with DIS the
same BasicVSR took 1.08 CPU s an iteration, ``results/benchmark/seed1_1200``).
"""
from basicsr.archs.basicvsr_arch import BasicVSR
from basicsr.utils.registry import ARCH_REGISTRY

from sl_arch.archs.prealign_arch import SLDISFlow
from sl_arch.utils.options import OptionError

#: ``flow_estimator`` values of :class:`SLBasicVSR`.
FLOW_ESTIMATORS = ('spynet', 'dis')


@ARCH_REGISTRY.register()
class SLBasicVSR(BasicVSR):
    """BasicSR's BasicVSR whose flow is its SpyNet (as in BasicSR) or OpenCV's DIS.

    With ``flow_estimator: spynet`` it is ``BasicVSR`` itself (same state dict: BasicSR's BasicVSR
    weights load strictly). With ``dis`` the ``spynet`` attribute holds a parameter-free
    :class:`SLDISFlow` (same call and flow convention as SpyNet: for each pixel of the first frame,
    where it is in the second), so BasicSR's ``get_flow`` and ``forward`` run unchanged and the
    network has no SpyNet parameters. Forward: (b, t, 3, h, w) LR clip -> (b, t, 3, 4h, 4w).

    Args:
        num_feat (int): Channels. Default: 64.
        num_block (int): Residual blocks of each propagation branch. Default: 15.
        spynet_path (str | None): Pretrained SpyNet weights (``spynet`` only). Default: None.
        flow_estimator (str): ``'spynet'`` or ``'dis'``. Default: 'spynet'.
        dis_preset (str): OpenCV DIS preset with ``dis`` (see ``SLDISFlow``). Default: 'medium'.
    """

    def __init__(self, num_feat=64, num_block=15, spynet_path=None, flow_estimator='spynet', dis_preset='medium'):
        if flow_estimator not in FLOW_ESTIMATORS:
            raise OptionError(f'SLBasicVSR flow_estimator must be one of {", ".join(FLOW_ESTIMATORS)}, '
                              f'got {flow_estimator!r}.')
        if flow_estimator == 'dis' and spynet_path:
            raise OptionError('SLBasicVSR flow_estimator dis (OpenCV) has no weights to load: remove spynet_path, '
                              "or set flow_estimator to 'spynet'.")
        super().__init__(num_feat, num_block, spynet_path)
        self.flow_estimator = flow_estimator
        if flow_estimator == 'dis':
            self.spynet = SLDISFlow(dis_preset)
