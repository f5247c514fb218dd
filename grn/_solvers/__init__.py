from ._base import AbstractSolver as AbstractSolver
from ._ode import ODE as ODE
from ._ssa import SSA as SSA
