from cmrclip.abbreviations import expand_abbreviations
from cmrclip.config import TextConfig
from cmrclip.text_tower import TextTokenizer, resolve_text_model_dir


def test_abbreviations_are_spelled_out_as_whole_tokens():
    assert expand_abbreviations("Dilated LV, LVEF 30%. No LGE.") == (
        "Dilated left ventricular, left ventricular ejection fraction 30%. No late gadolinium enhancement."
    )
    assert expand_abbreviations("RV: EDVi 150 ml/m²") == "right ventricular: indexed end-diastolic volume 150 ml/m²"
    # not inside words, not lower case
    assert expand_abbreviations("ELVIS lv Llama LAD") == "ELVIS lv Llama LAD"


def test_tokenizer_expands_only_when_configured():
    path = resolve_text_model_dir(None)
    plain = TextTokenizer(path, 32, 0)
    expanding = TextTokenizer(path, 32, 0, expand=True)
    assert expanding(["dilated RV"]).tolist() == plain(["dilated right ventricular"]).tolist()
    assert plain(["dilated RV"]).tolist() != plain(["dilated right ventricular"]).tolist()
    assert TextConfig().expand_abbreviations is False  # checkpoints made before the option keep their behaviour
