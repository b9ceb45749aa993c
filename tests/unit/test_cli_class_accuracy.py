"""`ganforge quality` shows a conditional model's class accuracy as a percentage."""

from cli.quality import COLUMNS, figure_text


def test_class_accuracy_is_a_column_shown_in_percent_with_its_interval() -> None:
    assert ("class_accuracy", "as asked") in COLUMNS
    assert figure_text("class_accuracy", 0.9731, [0.9698, 0.9762]) == "97.3% [97.0%, 97.6%]"
