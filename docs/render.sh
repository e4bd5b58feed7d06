#!/usr/bin/env bash
# Regenerate the pictures the documentation pages show: bash docs/render.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
mlm() { "$PY" -m mlmcli "$@"; }
HECK=sample_data/heck2011.csv
SLEEP=tests/fixtures/lme4/data/sleepstudy.csv
PEN=tests/fixtures/lme4/data/Penicillin.csv
JOURNAL=(--theme paper --width 3.5 --height 3)   # one journal column, 300 dpi

mlm plot $HECK "math ~ ses + (ses|schcode)" --kind ranef -o docs/ranef.png
mlm plot $HECK "math ~ ses + (ses|schcode)" --kind caterpillar -o docs/caterpillar.png
mlm plot $HECK "math ~ ses + (ses|schcode)" --kind spaghetti -o docs/spaghetti.png
mlm plot $HECK "math ~ ses*public + (ses|schcode)" --kind fitted --by public -o docs/fitted.png
mlm plot $HECK "math ~ ses + (ses|schcode)" --kind residuals -o docs/residuals.png
mlm plot $SLEEP "Reaction ~ Days + (Days|Subject)" --kind ranef -o docs/ranef_sleepstudy.png
mlm plot $SLEEP "Reaction ~ Days + (Days|Subject)" --kind caterpillar -o docs/caterpillar_sleepstudy.png
mlm plot $PEN "diameter ~ 1 + (1|plate) + (1|sample)" --kind caterpillar -o docs/caterpillar_penicillin.png
mlm plot $HECK "math ~ ses*public + (ses|schcode)" --kind fitted --by public "${JOURNAL[@]}" --title "" \
    -o docs/fitted_paper.png
mlm plot $SLEEP "Reaction ~ Days + (Days|Subject)" --kind caterpillar "${JOURNAL[@]}" --title "" --caption "" \
    -o docs/caterpillar_paper.png
mlm plot $SLEEP "Reaction ~ Days + (Days|Subject)" --kind profile -o docs/profile.png
mlm plot $PEN "diameter ~ 1 + (1|plate) + (1|sample)" --kind ranef -o docs/ranef_penicillin.png
mlm plot $HECK "math ~ ses*public + (ses|schcode)" --kind coef -o docs/coef.png
mlm plot $HECK "math ~ ses*public + (ses|schcode)" --kind effects --terms ses,public -o docs/effects.png
mlm plot $HECK "math ~ ses*public + (ses|schcode)" --kind effects --terms ses,public "${JOURNAL[@]}" --title "" \
    -o docs/effects_paper.png
mlm plot $SLEEP "Reaction ~ Days + (Days|Subject)" --kind check -o docs/check.png
mlm plot $HECK "math ~ ses + (ses|schcode)" --kind check "${JOURNAL[@]}" -o docs/check_paper.png
mlm plot $SLEEP "Reaction ~ Days + (Days|Subject)" --kind shrinkage -o docs/shrinkage.png
mlm plot $SLEEP "Reaction ~ Days + (Days|Subject)" --kind shrinkage "${JOURNAL[@]}" --title "" \
    -o docs/shrinkage_paper.png
