from ._base import (
    AbstractSolver as AbstractSolver,
    CellPath as CellPath,
    CellProgram as CellProgram,
)
from ._cle import CLE as CLE
from ._hybrid import Hybrid as Hybrid
from ._lna import LNA as LNA
from ._ode import ODE as ODE
from ._rosenbrock import Rodas4 as Rodas4, Rodas5P as Rodas5P
from ._ssa import SSA as SSA
from ._tau_leap import TauLeap as TauLeap
