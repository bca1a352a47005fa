"""Checks on option dicts that BasicSR passes to constructors as keyword arguments."""
import difflib
import inspect

from sl_arch.utils.errors import SLError


class OptionError(SLError, TypeError):
    """An option key or value that a constructor cannot take."""


def reject_unknown_options(cls, unknown):
    """Raise one clear error for keys a constructor does not know, with the nearest valid key.

    Args:
        cls (type): The class being built (its ``__init__`` signature lists the valid keys).
        unknown (dict): The keyword arguments that were not consumed.
    """
    if not unknown:
        return
    valid = [name for name in inspect.signature(cls.__init__).parameters if name not in ('self', 'unknown_options')]
    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, valid, n=1)
        hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ''))
    raise OptionError(f'{cls.__name__} got unknown option key(s) {", ".join(hints)} under network_g; '
                      f'valid keys are: {", ".join(valid)}.')
