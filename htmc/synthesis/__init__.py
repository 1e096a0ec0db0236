"""Circuit synthesis under an error bound (DESIGN §2.2, §2.3): the ε relation (relation), code strategies, the
Problem/Attempt contract and the METHODS registry (problem), one module per method (table_method, abc_method,
exact_method, arith_method with piecewise), the search portfolio (search), and the tool wrappers: ABC
(abc_tool) and SAT exact synthesis (sat_exact, boolean for plain Boolean functions).
"""
from . import abc_method, arith_method, datapath_method, exact_method, mc_method, table_method  # noqa: F401
