"""Training batches: what the loss sees (padding carries the ignore label)."""

from __future__ import annotations


# -- training batches -------------------------------------------------------------------------------------
def test_padding_positions_carry_the_ignore_label():
    import torch

    from llara_core.model.data import IGNORE_INDEX, collate

    pix = torch.zeros(3, 8, 8)
    batch = [
        {"input_ids": [5, 6, 7, 8], "labels": [IGNORE_INDEX, IGNORE_INDEX, 7, 8], "pixel_values": pix},
        {"input_ids": [5, 6], "labels": [IGNORE_INDEX, 6], "pixel_values": pix},
    ]
    out = collate(batch, pad_id=0)
    assert out["labels"][1].tolist() == [IGNORE_INDEX, 6, IGNORE_INDEX, IGNORE_INDEX]
    assert out["attention_mask"][1].tolist() == [1, 1, 0, 0] and out["input_ids"][1].tolist() == [5, 6, 0, 0]
    assert out["labels"][0].tolist() == [IGNORE_INDEX, IGNORE_INDEX, 7, 8]
