"""The ground floor: what every other layer stands on, importing nothing else of cxrlib.

Owns the validated configuration and its profiles (:mod:`~cxrlib.core.config`), the authors'
recipe with the config line of each value (:mod:`~cxrlib.core.recipe`), where a session's
data, runs and results live (:mod:`~cxrlib.core.workspace`: the one value that carries them,
set at the entry points and passed down in the configuration), errors a user can act on
(:mod:`~cxrlib.core.errors`),
crash- and Drive-safe file writing (:mod:`~cxrlib.core.fileio`), the platform a session runs on
(:mod:`~cxrlib.core.platform`: Colab, Kaggle, a mounted Google Drive) and the session's clock
(:mod:`~cxrlib.core.clock`: when training pauses, how a pause is announced).

With the entry points (:mod:`cxrlib.app`), this is the only layer that reads the environment.

Imports: the standard library and third-party packages only -- no other layer of cxrlib.
"""
