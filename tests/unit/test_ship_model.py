"""scripts/ship_model.py: the card names every training stage and the command that ran it."""

from scripts.ship_model import parse_recipe, stage_lines, training_stages


def _metadata():
    first = {"model": "/somewhere/models/base", "training": {"seconds": 7200.0, "step": 100, "epochs": 30,
                                                             "target_tokens": 1000}}
    second = {"model": "/somewhere/work/tuned/best", "training": {"seconds": 1800.0, "step": 20, "epoch": 5,
                                                                 "target_tokens": 300}, "initialized_from": first}
    return {"training": {"seconds": 900.0, "step": 10, "epochs": 2, "target_tokens": 100}, "initialized_from": second}


def test_stages_run_first_to_last_through_the_chain_of_initial_models():
    stages = training_stages(_metadata())
    assert [st["seconds"] for st in stages] == [7200.0, 1800.0, 900.0]
    assert [st["epochs"] for st in stages] == [30, 5, 2]  # an older record's "epoch" counts too
    assert training_stages({"training": {"seconds": 5.0, "step": 1, "epochs": 1}})[0]["step"] == 1


def test_each_stage_line_names_its_recipe_with_the_settings_it_ran_with():
    recipes = [parse_recipe("scripts/train_default_model.sh"),
               parse_recipe("BASE=models/multi30k-en-de scripts/train_self_distilled.sh"),
               parse_recipe("BASE=work/multi30k/tuned/best 'OUT=work/multi30k/tuned 2' "
                            "scripts/train_self_distilled.sh")]
    assert recipes[2]["invocation"] == ("BASE=work/multi30k/tuned/best 'OUT=work/multi30k/tuned 2' "
                                        "bash scripts/train_self_distilled.sh")
    assert any("jobs/train_model.py" in line for line in recipes[1]["commands"])
    assert not any(line.startswith("#") for line in recipes[1]["commands"])
    lines = stage_lines(training_stages(_metadata()), recipes)
    assert lines[0] == ("  - stage 1 (from scratch, `bash scripts/train_default_model.sh`): 2.00 h, 100 updates, "
                        "30 epochs")
    assert lines[2].startswith("  - stage 3 (from the weights of stage 2, `BASE=work/multi30k/tuned/best")
    # without one recipe per stage the lines still give each stage's training
    assert stage_lines(training_stages(_metadata()), recipes[:1])[1] == \
        "  - stage 2 (from the weights of stage 1): 0.50 h, 20 updates, 5 epochs"
    assert stage_lines(training_stages({"training": {"seconds": 1.0}}), recipes[:1]) == []
