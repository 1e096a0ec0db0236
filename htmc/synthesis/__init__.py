"""Circuit synthesis under an error bound (DESIGN §2.2, §2.3): the ε relation (relation), code strategies, the
Problem/Attempt contract and the METHODS registry (problem), one module per method (table_method, abc_method,
exact_method, arith_method with piecewise, decomp_method, lupanov), the search portfolio (search), and the tool
wrappers: ABC (abc_tool) and SAT exact synthesis (sat_exact, boolean for plain Boolean functions).
"""
from . import abc_method, arith_method, datapath_method, decomp_method, exact_method, lupanov  # noqa: F401
from . import mc_method, table_method  # noqa: F401  (register the methods)
