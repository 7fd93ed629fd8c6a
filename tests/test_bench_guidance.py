"""The guidance and editing benchmarks on tiny inputs: every part runs and the report renders."""

from __future__ import annotations

import pytest
import torch

from diffkit.bench import editing, guidance, guidance_report


def test_mixture_parts_run_and_render():
    report = {"machine": "test", "quick": True, "date": "today",
              "inpainting": editing.inpainting_rows(n=16, samplers=("ddim",), steps=(3,), resamples=(1, 2),
                                                    jumps=((4, 2, 2),)),
              "inversion": editing.inversion_rows(steps=(3,), n=4, digits=0),
              "img2img": editing.img2img_rows(strengths=(0.5,), n=16, steps=3, digits=False)}
    rows = report["inpainting"]["rows"]
    assert [(r["sampler"], r["resample"], r["jump"]) for r in rows] == [("ddim", 1, 1), ("ddim", 2, 1), ("ddpm", 2, 2)]
    assert all(0 <= r["hard_main_weight"] <= 1 for r in rows)
    assert {r["sampler"] for r in report["inversion"]} == {"ddim", "dpmpp_2m", "heun", "dpmpp_3m_sde"}
    text = guidance_report.markdown(report)
    for title in ("Inpainting vs the exact conditional", "Inversion round trip", "img2img by strength"):
        assert title in text


def test_digits_parts_run_and_render():
    pytest.importorskip("sklearn")
    from diffkit.digits.pretrained import load_pretrained

    model, schedule = load_pretrained()
    labels = torch.arange(4)
    report = {"machine": "test", "quick": True, "date": "today", "digits_n": 4, "fd_floor_real": 1.0,
              "classifier_guidance": guidance.classifier_guidance_rows(model, schedule, labels, scales=(0, 1),
                                                                       cfg=(0.0,), steps=2),
              "cfg_order": guidance.cfg_order_rows(model, schedule, labels, scales=(2.0,), steps=(2,),
                                                   reference_steps=3, rms_n=2),
              "cfg_variants": guidance.cfg_variant_rows(model, schedule, labels, steps=2, rescales=(0.5,),
                                                        intervals=((0.3, 5.0),))}
    assert len(report["cfg_order"]) == len(guidance.ORDER_SAMPLERS)
    assert [r["variant"] for r in report["cfg_variants"]] == ["plain", {"guidance_rescale": 0.5},
                                                              {"interval": [0.3, 5.0]}]
    text = guidance_report.markdown(report)
    assert "Classifier guidance" in text and "Solver order under classifier-free guidance" in text
