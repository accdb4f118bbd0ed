"""Chapter parameters checked against their annotations: a raw papermill string or a number where
a list is asked is one line naming the parameter and the form to pass (test_chapter5_papermill.py
runs one such failure through papermill)."""
from typing import Optional

import pytest

from cvae_tutorial import ConfigError
from cvae_tutorial.parameters import check_parameter, check_parameters


@pytest.mark.parametrize("value, kind, message", [
    ("False", bool, "evaluate must be a bool, got the string 'False'; with papermill pass "
                    "-p evaluate False"),
    (1, bool, "evaluate must be a bool, got int 1"),
    (3, list[int], "evaluate must be a list of ints, got int 3; with papermill pass a YAML "
                   "list: -y 'evaluate: [0, 1, 2]'"),
    ("sigma", list[str], "-y 'evaluate: [sigma]'"),
    ([0, "1"], list[int], "must be a list of ints, got list [0, '1']"),
    ([True], list[int], "must be a list of ints"),
    ("3", int, "evaluate must be an int, got the string '3'; with papermill pass -p evaluate 3"),
    (True, int, "evaluate must be an int, got bool True"),
    (2.5, int, "evaluate must be an int, got float 2.5"),
    ("1e-3", float, "evaluate must be a number, got the string '1e-3'; with papermill pass "
                    "-p evaluate 1e-3"),
    (7, str, "evaluate must be a string, got int 7; with papermill pass -r evaluate 7"),
    ("None", Optional[int], "evaluate must be an int or None (-p evaluate None), got the string "
                            "'None'"),
    (None, int, "evaluate must be an int, got NoneType None"),
], ids=lambda v: repr(v)[:20])
def test_a_wrong_type_is_one_line_naming_the_form_to_pass(value, kind, message):
    with pytest.raises(ConfigError) as error:
        check_parameter("evaluate", value, kind)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("value, kind, expected", [
    (False, bool, False), (3, int, 3), (3, float, 3.0), (None, Optional[str], None),
    ("runs/x", Optional[str], "runs/x"), ([0, 1], list[int], [0, 1]), ([], list[str], []),
    (128, Optional[int], 128), ([1, 2], list[float], [1.0, 2.0])])
def test_right_types_pass_and_ints_become_floats(value, kind, expected):
    checked = check_parameter("p", value, kind)
    assert checked == expected and type(checked) is type(expected)


def test_the_namespace_is_checked_against_its_annotations_in_place():
    namespace = {"lr": 1, "epochs": 3, "unannotated": "x"}
    check_parameters(namespace, {"lr": float, "epochs": int, "absent": int})
    assert type(namespace["lr"]) is float and namespace["epochs"] == 3
    with pytest.raises(ConfigError, match="epochs must be an int"):
        check_parameters({"epochs": "3"}, {"epochs": int})
