import torch

from cmrclip.train.captions import CaptionSampler, sentences

IMPRESSION = "1. Dilated cardiomyopathy.\n2. Severely impaired LV systolic function (LVEF 24%)."
FINDINGS = (
    "LV: EDV 310 ml, ESV 236 ml, EF 24%. Indexed EDV 160 ml/m². Enlarged left ventricle. "
    "No LV hypertrophy. Normal RV size and function.\nNo late gadolinium enhancement. No pericardial effusion."
)


def test_sentences_split_reports_and_strip_enumeration():
    assert sentences(IMPRESSION) == ["Dilated cardiomyopathy.", "Severely impaired LV systolic function (LVEF 24%)."]
    found = sentences(FINDINGS)
    assert found[0] == "LV: EDV 310 ml, ESV 236 ml, EF 24%."
    assert "No LV hypertrophy." in found and "No late gadolinium enhancement." in found
    assert len(found) == 7
    assert sentences(None) == [] and sentences("  \n ") == []


def test_sampler_draws_report_sentences_reproducibly():
    sampler = CaptionSampler(impression_prob=0.0, max_sentences=3)
    pool = set(sentences(IMPRESSION) + sentences(FINDINGS))
    drawn = [sampler(IMPRESSION, FINDINGS, torch.Generator().manual_seed(s)) for s in range(200)]
    again = [sampler(IMPRESSION, FINDINGS, torch.Generator().manual_seed(s)) for s in range(200)]
    assert drawn == again
    for caption in drawn:
        parts = sentences(caption)
        assert 1 <= len(parts) <= 3 and set(parts) <= pool
    # every sentence, negations included, is seen as a caption at some step
    assert set().union(*(sentences(c) for c in drawn)) == pool


def test_sampler_mixes_impressions_and_falls_back_without_findings():
    generator = torch.Generator().manual_seed(0)
    always = CaptionSampler(impression_prob=1.0)
    assert all(always(IMPRESSION, FINDINGS, generator) == IMPRESSION for _ in range(20))
    half = CaptionSampler(impression_prob=0.5)
    share = sum(half(IMPRESSION, FINDINGS, generator) == IMPRESSION for _ in range(400)) / 400
    assert 0.4 < share < 0.6
    never = CaptionSampler(impression_prob=0.0)
    assert set(sentences(never("Normal study.", None, generator))) == {"Normal study."}
