"""sl_arch losses: every `*_loss.py` module here is imported so that registration happens on import."""
from sl_arch.utils.registration import import_modules

import_modules(__name__, __file__, '_loss.py')
