from evals.names import score_names


def test_name_accuracy_counts_names_said_and_spelled_right_before_and_after():
    rows = [
        {"reference": "今天去华星电子见了张总，德沃森报价低。", "before": "今天去华兴电子见了张总，得我森报价低。",
         "after": "今天去华星电子见了张总，德沃森报价低。", "vocabulary": ["华星电子", "华星", "张总", "德沃森", "智云"]},
        {"reference": "没有提到任何名字。", "before": "没有提到任何名字", "after": "没有提到任何名字", "vocabulary": ["华星"]},
    ]  # fmt: skip
    result = score_names(rows)
    assert result == {"n": 2, "names_said": 3, "name_accuracy_before": 0.3333, "name_accuracy_after": 1.0}
