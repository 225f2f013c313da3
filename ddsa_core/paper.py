"""The paper's reported numbers, transcribed from its text, for side-by-side comparison only.

Nothing here is a result of ours: every number of ours is computed by the code that the book's
chapters call. Source: Bakhti et al., IEEE Access 7 (2019), Section IV.A.1 and Tables 6-9.
"""
from __future__ import annotations

CLEAN_ACCURACY = {"mnist": 0.9896, "cifar10": 0.8142}  # Section IV.A.1

ATTACKS = ("fgsm", "rfgsm", "cw", "mim", "pgd")  # the tables' row order

# Table 7: gray-box, MNIST. Table 8: gray-box, CIFAR-10 (eps 0.2).
GRAY_BOX = {
    "mnist": {
        "no_defense": {"fgsm": 0.249, "rfgsm": 0.165, "cw": 0.011, "mim": 0.053, "pgd": 0.019},
        "ddsa": {"fgsm": 0.899, "rfgsm": 0.849, "cw": 0.811, "mim": 0.876, "pgd": 0.889},
        "dda": {"fgsm": 0.715, "rfgsm": 0.382, "cw": 0.140, "mim": 0.238, "pgd": 0.741},
    },
    "cifar10": {
        "no_defense": {"fgsm": 0.131, "rfgsm": 0.092, "cw": 0.000, "mim": 0.036, "pgd": 0.021},
        "ddsa": {"fgsm": 0.610, "rfgsm": 0.543, "cw": 0.367, "mim": 0.584, "pgd": 0.611},
        "dda": {"fgsm": 0.489, "rfgsm": 0.297, "cw": 0.095, "mim": 0.428, "pgd": 0.583},
    },
}

# Table 6: black-box, MNIST (eps 0.3; clean accuracy 0.989 in every row).
BLACK_BOX = {
    "mnist": {
        "no_defense": {"fgsm": 0.412, "rfgsm": 0.245, "cw": 0.091, "mim": 0.180, "pgd": 0.254},
        "ddsa": {"fgsm": 0.902, "rfgsm": 0.889, "cw": 0.841, "mim": 0.889, "pgd": 0.911},
        "magnet": {"fgsm": 0.607, "rfgsm": 0.522, "cw": 0.588, "mim": 0.674, "pgd": 0.671},
        "adv_training": {"fgsm": 0.766, "rfgsm": 0.685, "cw": 0.290, "mim": 0.608, "pgd": 0.672},
        "dda": {"fgsm": 0.885, "rfgsm": 0.849, "cw": 0.721, "mim": 0.799, "pgd": 0.896},
    },
}

# Table 9: white-box, MNIST (eps 0.3).
WHITE_BOX = {
    "mnist": {
        "no_defense": {"fgsm": 0.152, "rfgsm": 0.104, "cw": 0.000, "mim": 0.010, "pgd": 0.000},
        "ddsa": {"fgsm": 0.614, "rfgsm": 0.427, "cw": 0.038, "mim": 0.345, "pgd": 0.838},
        "magnet": {"fgsm": 0.094, "rfgsm": 0.115, "cw": 0.021, "mim": 0.264, "pgd": 0.177},
        "adv_training": {"fgsm": 0.651, "rfgsm": 0.539, "cw": 0.010, "mim": 0.204, "pgd": 0.162},
        "dda": {"fgsm": 0.295, "rfgsm": 0.300, "cw": 0.022, "mim": 0.200, "pgd": 0.197},
    },
}

# Figure 6 (gray-box PGD, eps 0.3, 10 to 1000 iterations): the two values the text gives, at 1000.
# They equal Table 7's PGD cells (0.889 and 0.741).
PGD_1000_ITERATIONS = {"mnist": {"ddsa": 0.8893, "dda": 0.7414}}
