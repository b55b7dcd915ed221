"""Reading pyinfra's results table (pure parsing; no hosts needed)."""

from __future__ import annotations

from tests.hosts.pyinfra_run import OpResult, parse_results

# Captured from a real pyinfra 3.10 run on two nspawn hosts (one op changed on
# both, one changed nothing, one failed on one host and was skipped on the other).
REAL_OUTPUT = """\
--> Starting operation: Fail on purpose 
    [10.231.0.10] Skipped
    [10.231.0.11] Error: executed 0 commands

--> Results:
    Operation            Hosts   Success   Error   No Change   
    Make scratch dir     2       2         -       -           
    Ensure root exists   2       -         -       2           
    Fail on purpose      1       -         1       -           
    Grand total          5       2         1       2           

--> Disconnecting from hosts...
"""  # noqa: W291 - pyinfra pads its columns with trailing spaces


def test_rows_map_success_to_changed_and_dashes_to_zero():
    ops = parse_results(REAL_OUTPUT)
    assert ops == {
        "Make scratch dir": OpResult(hosts=2, changed=2, errors=0, unchanged=0),
        "Ensure root exists": OpResult(hosts=2, changed=0, errors=0, unchanged=2),
        "Fail on purpose": OpResult(hosts=1, changed=0, errors=1, unchanged=0),
        "Grand total": OpResult(hosts=5, changed=2, errors=1, unchanged=2),
    }


def test_colour_codes_and_spaces_in_names_are_handled():
    coloured = "--> Results:\n    \x1b[1mInstall base packages (apt)\x1b[0m   1   \x1b[32m1\x1b[0m   -   -\n"
    assert parse_results(coloured) == {
        "Install base packages (apt)": OpResult(hosts=1, changed=1, errors=0, unchanged=0)
    }


def test_no_table_means_no_results():
    # pyinfra refusing bad data exits before printing any results table.
    assert parse_results("--> pyinfra error: node0: gpu_count: expected an integer\n") == {}
