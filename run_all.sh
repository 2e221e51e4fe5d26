#!/usr/bin/env bash
# Reproduce every table and figure of CTransCNN (Wu et al., KBS 2023) and CheXNet
# (Wu et al., PRCV 2023): set up the environment, then run notebooks/NN_*.ipynb in order with
# papermill. See ./run_all.sh --help.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'EOF'
Usage: ./run_all.sh [options]            run the notebooks end to end
       ./run_all.sh --test [pytest args] run the test suite (e.g. --test -m e2e)
       ./run_all.sh --setup              only prepare the Python environment

Environment: uses the active virtual/conda environment if there is one (or Colab/Kaggle's
own Python), otherwise creates or reuses ./.venv. Installs this project and whatever is
missing; torch/torchvision are installed only when absent and are never replaced.

Options:
  --profile smoke|paper  smoke: phantom data, tiny models, minutes on a CPU.
                         paper: the papers' recipe on the real data (needs the data, a GPU).
                         Default: paper when real data is found (a root option or
                         variable, a Kaggle input under /kaggle/input, a finished
                         download), otherwise smoke. The data chosen is printed first.
  --download             first download the datasets not found, with kagglehub
                         (python -m cxrlib download; needs Kaggle credentials)
  --time-limit-minutes N pause every training cleanly N minutes after the start (set it
                         below the session's limit: Colab/Kaggle sessions end); the run
                         then stops with "paused — run again to resume" and exit status
                         75; running the same command again resumes.
  --only 01,03           run only the notebooks with these numbers (in order).
  --set NAME=VALUE       pass a parameter to every notebook (validated by cxrlib.core.config;
                         e.g. --set EPOCHS=5; names are case-insensitive). Repeatable.
  --yaml 'NAME: VALUE'   pass parameters as YAML, for lists: a run filter, e.g.
                         --only 06 --yaml 'MODELS: [resnet50, chexnet_tiny]' trains and
                         tabulates just those models. Repeatable.
  --data-root NAME=DIR   where a dataset's real data is, e.g. --data-root cxr14=/data/nih
                         (the NIH folder with Data_Entry_2017.csv and images_0XX/), or
                         --data-root cxr11=/data/ranzcr (train.csv and train/). Repeatable;
                         env CXRLIB_DATA_ROOTS="cxr14=DIR,cxr11=DIR".
  --results-dir DIR      outputs (default ./results; env CXRLIB_RESULTS_DIR)
  --runs-dir DIR         training runs and checkpoints (default ./runs; env CXRLIB_RUNS_DIR)
  --data-dir DIR         split files, phantom data, image caches (default ./open_data;
                         env CXRLIB_DATA_DIR). On Colab/Kaggle the three default to
                         results/, runs/ and open_data/ beside the clone (/content/...,
                         /kaggle/working/...), where the notebooks' badges write too; a
                         folder under /content/drive needs Drive mounted first.
  --python PATH          use this Python interpreter as is, installing nothing
                         (env CXRLIB_PYTHON)
  -h, --help             show this help

Outputs:
  results/<profile>/tables/<name>.csv and .md   every table, ours beside the papers'
  results/<profile>/figures/<name>.png          every figure
  results/<profile>/executed/NN_*.ipynb         the executed notebooks (errors included)
  runs/<profile>/...                            training runs: configs, logs, checkpoints
EOF
}

die() { echo "run_all.sh: error: $*" >&2; exit 2; }

PROFILE=""
DOWNLOAD=0
TIME_LIMIT=""
ONLY=""
MODE="run"
PARAMS=()
TEST_ARGS=()
PYTHON="${CXRLIB_PYTHON:-}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --profile) [[ $# -ge 2 ]] || die "--profile needs a value"; PROFILE="$2"; shift 2 ;;
    --profile=*) PROFILE="${1#*=}"; shift ;;
    --download) DOWNLOAD=1; shift ;;
    --time-limit-minutes) [[ $# -ge 2 && "$2" =~ ^[0-9]+([.][0-9]+)?$ ]] ||
                            die "--time-limit-minutes needs a number of minutes"
                          TIME_LIMIT="$2"; shift 2 ;;
    --only) [[ $# -ge 2 ]] || die "--only needs a value"; ONLY="$2"; shift 2 ;;
    --only=*) ONLY="${1#*=}"; shift ;;
    --set) [[ $# -ge 2 && "$2" == *=* ]] || die "--set needs NAME=VALUE"
           name="${2%%=*}"
           [[ "$name" =~ ^[A-Za-z][A-Za-z0-9_]*$ ]] || die "--set: '$name' is not a parameter name"
           # notebook parameters are upper case; names are case-insensitive (epochs=3)
           PARAMS+=(-p "${name^^}" "${2#*=}"); shift 2 ;;
    --yaml) [[ $# -ge 2 ]] || die "--yaml needs 'NAME: VALUE'"; PARAMS+=(-y "$2"); shift 2 ;;
    --data-root) [[ $# -ge 2 && "$2" == ?*=?* ]] || die "--data-root needs NAME=DIR, e.g. cxr14=/data/nih"
                 export CXRLIB_DATA_ROOTS="${CXRLIB_DATA_ROOTS:+$CXRLIB_DATA_ROOTS,}$2"; shift 2 ;;
    --cxr14-root|--cxr11-root) die "$1 is now --data-root ${1:2:5}=DIR" ;;
    --results-dir) [[ $# -ge 2 ]] || die "--results-dir needs a folder"; export CXRLIB_RESULTS_DIR="$2"; shift 2 ;;
    --runs-dir) [[ $# -ge 2 ]] || die "--runs-dir needs a folder"; export CXRLIB_RUNS_DIR="$2"; shift 2 ;;
    --data-dir) [[ $# -ge 2 ]] || die "--data-dir needs a folder"; export CXRLIB_DATA_DIR="$2"; shift 2 ;;
    --python) [[ $# -ge 2 ]] || die "--python needs a path"; PYTHON="$2"; shift 2 ;;
    --setup) MODE="setup"; shift ;;
    --test) MODE="test"; shift; TEST_ARGS=("$@"); break ;;
    *) usage >&2; die "unknown option '$1'" ;;
  esac
done

case "$PROFILE" in
  ""|smoke|paper) ;;
  *) die "unknown profile '$PROFILE'; allowed profiles: smoke, paper" ;;
esac
if [[ -n "$TIME_LIMIT" ]]; then
  # one deadline for every notebook of this run (cxrlib.app.time_limit)
  export CXRLIB_DEADLINE="$(awk -v now="$(date +%s)" -v m="$TIME_LIMIT" 'BEGIN { printf "%.0f", now + m * 60 }')"
fi

# --- 1. Choose the Python environment ------------------------------------------------------
find_base_python() {
  local candidate
  for candidate in python3 python3.13 python3.12 python3.11 python3.10 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; raise SystemExit(sys.version_info < (3, 10))' 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

if [[ -n "$PYTHON" ]]; then
  PY="$PYTHON"; WHERE="given interpreter"
elif [[ -n "${VIRTUAL_ENV:-}" && -x "${VIRTUAL_ENV}/bin/python" ]]; then
  PY="$VIRTUAL_ENV/bin/python"; WHERE="active virtual environment $VIRTUAL_ENV"
elif [[ -n "${CONDA_PREFIX:-}" && -x "${CONDA_PREFIX}/bin/python" ]]; then
  PY="$CONDA_PREFIX/bin/python"; WHERE="active conda environment $CONDA_PREFIX"
elif [[ -n "${COLAB_RELEASE_TAG:-}${KAGGLE_KERNEL_RUN_TYPE:-}" ]]; then
  PY="$(find_base_python)" || die "no Python >= 3.10 found"; WHERE="Colab/Kaggle system Python"
else
  if [[ ! -x "$ROOT/.venv/bin/python" ]]; then
    BASE="$(find_base_python)" || die "no Python >= 3.10 found; install one and re-run"
    echo "==> creating $ROOT/.venv with $BASE"
    "$BASE" -m venv "$ROOT/.venv" || die "could not create .venv (on Debian/Ubuntu: apt install python3-venv)"
  fi
  PY="$ROOT/.venv/bin/python"; WHERE="project venv $ROOT/.venv"
fi
"$PY" -c 'import sys; raise SystemExit(sys.version_info < (3, 10))' ||
  die "$PY is older than Python 3.10"
echo "==> Python: $PY ($WHERE)"

# --- 2. Install what is missing (once per environment, extras and pyproject.toml) -----------
# Colab and Kaggle: every preinstalled package is a constraint (cxrlib/app/preinstalled.py),
# so nothing of the platform changes -- its Jupyter, its protobuf, its torch; only the kit's own
# dependencies that are missing are added, and no 'dev' or 'lab' extra unless the tests need
# 'dev'. Elsewhere torch/torchvision are pinned to what is there and the extras come along.
ON_PLATFORM=0
[[ "$WHERE" == "Colab/Kaggle system Python" ]] && ON_PLATFORM=1
EXTRAS="dev,lab,docs"
if [[ "$ON_PLATFORM" == 1 ]]; then
  EXTRAS=""
  [[ "$MODE" == "test" ]] && EXTRAS="dev"
fi

ensure_installed() {
  local stamp_dir="$ROOT/.cxrlib-env" key stamp
  key="$( (echo "$PY" "$EXTRAS"; "$PY" -c 'import sys; print(sys.prefix)'; cat "$ROOT/pyproject.toml") |
          cksum | cut -d' ' -f1)"
  stamp="$stamp_dir/installed-$key"
  # present, without importing them (importing torch alone takes seconds at every call)
  if [[ -f "$stamp" ]] && "$PY" -c 'import importlib.util as u, sys
sys.exit(not all(u.find_spec(m) for m in ("cxrlib", "papermill", "torch", "torchvision", "timm")))' \
      2>/dev/null; then
    return 0
  fi
  "$PY" -m pip --version >/dev/null 2>&1 || "$PY" -m ensurepip --upgrade >/dev/null
  if ! "$PY" -c 'import torch, torchvision' 2>/dev/null; then
    echo "==> installing torch and torchvision (absent from this environment)"
    "$PY" -m pip install torch torchvision
  fi
  "$PY" "$ROOT/cxrlib/app/preinstalled.py" --check-floors "$ROOT/pyproject.toml" ||
    die "the kit never replaces an installed torch: upgrade it in this environment" \
        "($PY -m pip install -U torch torchvision, or a fresh environment; on Colab/Kaggle a" \
        "newer runtime image)"
  local constraints="$stamp_dir/constraints.txt"
  mkdir -p "$stamp_dir"
  if [[ "$ON_PLATFORM" == 1 ]]; then
    "$PY" "$ROOT/cxrlib/app/preinstalled.py" >"$constraints"
    echo "==> installing the project${EXTRAS:+ [$EXTRAS]}; every preinstalled package is kept" \
         "($(wc -l <"$constraints") pinned as constraints)"
  else
    # Pin the torch that is there, so that no other requirement can replace it.
    "$PY" - >"$constraints" <<'PYEOF'
from importlib.metadata import version
for name in ("torch", "torchvision"):
    print(f"{name}=={version(name)}")
PYEOF
    echo "==> installing the project [$EXTRAS] and its dependencies ($(tr '\n' ' ' <"$constraints"))"
  fi
  local target="$ROOT"
  [[ -n "$EXTRAS" ]] && target="$ROOT[$EXTRAS]"
  "$PY" -m pip install --quiet -c "$constraints" -e "$target"
  if "$PY" -c 'import ipykernel' 2>/dev/null; then
    "$PY" -m ipykernel install --sys-prefix --name cxrlib --display-name "Python (cxrlib)" >/dev/null
  fi
  rm -f "$stamp_dir"/installed-*
  touch "$stamp"
}
if [[ -z "$PYTHON" ]]; then ensure_installed; fi
export CXRLIB_HOME="$ROOT"
if [[ "$ON_PLATFORM" == 1 && "$MODE" == "run" ]]; then
  # Colab/Kaggle: the folders the notebooks' badge route uses, beside the clone
  # (/content/results, /kaggle/working/results, ...), so that both routes share them
  parent="$(dirname "$ROOT")"
  export CXRLIB_RESULTS_DIR="${CXRLIB_RESULTS_DIR:-$parent/results}"
  export CXRLIB_RUNS_DIR="${CXRLIB_RUNS_DIR:-$parent/runs}"
  export CXRLIB_DATA_DIR="${CXRLIB_DATA_DIR:-$parent/open_data}"
fi

if [[ "$MODE" == "setup" ]]; then
  echo "==> environment ready: $PY"
  exit 0
fi

if [[ "$MODE" == "test" ]]; then
  cd "$ROOT"
  echo "==> $PY -m pytest ${TEST_ARGS[*]:-}"
  set +e
  CXRLIB_PYTHON="$PY" "$PY" -m pytest ${TEST_ARGS[@]+"${TEST_ARGS[@]}"}
  rc=$?
  set -e
  if [[ $rc -eq 5 ]]; then
    echo "==> pytest selected no tests for '${TEST_ARGS[*]:-}' (not a failure)"
    exit 0
  fi
  exit $rc
fi

# --- 3. Choose the data and the profile ----------------------------------------------------
if [[ "$DOWNLOAD" == 1 ]]; then
  "$PY" -m cxrlib download all || die "download failed (see above)"
fi
if [[ -z "$PROFILE" ]]; then
  PROFILE="$("$PY" -c 'from cxrlib.core.workspace import Workspace
from cxrlib.data.roots import auto_profile
print(auto_profile(Workspace.from_env()))')"
fi
echo "==> data (profile '$PROFILE'):"
"$PY" -m cxrlib data --profile "$PROFILE" | sed -n '2,$s/^/    /p'

# --- 4. Run the notebooks ------------------------------------------------------------------
RESULTS="${CXRLIB_RESULTS_DIR:-$ROOT/results}"
EXECUTED="$RESULTS/$PROFILE/executed"
mkdir -p "$EXECUTED"
# Temp files of table/figure/report writes that a killed earlier run left (cxrlib.core.fileio).
find "$RESULTS/$PROFILE" -name '.*.tmp' -type f -delete 2>/dev/null || true

NOTEBOOKS=()
for nb in "$ROOT"/notebooks/[0-9][0-9]_*.ipynb; do
  [[ -e "$nb" ]] || continue
  number="$(basename "$nb" | cut -c1-2)"
  if [[ -n "$ONLY" && ",$ONLY," != *",$number,"* ]]; then continue; fi
  NOTEBOOKS+=("$nb")
done
[[ ${#NOTEBOOKS[@]} -gt 0 ]] || die "no notebook matches --only '$ONLY' in $ROOT/notebooks"

# The kernelspec made at set-up runs exactly $PY; otherwise jupyter_client maps 'python3' to it.
KERNEL="$("$PY" -c 'from jupyter_client.kernelspec import KernelSpecManager as M
print("cxrlib" if "cxrlib" in M().find_kernel_specs() else "python3")')"

echo "==> profile '$PROFILE': ${#NOTEBOOKS[@]} notebook(s); executed copies in $EXECUTED"
# Papermill logs what a cell prints: progress as plain lines, one per epoch or per minute
# (cxrlib.core.progress), not a bar redrawn in place.
export CXRLIB_PROGRESS="${CXRLIB_PROGRESS:-lines}"
# A training paused by the time limit writes here (cxrlib.core.clock.PAUSE_FILE_ENV).
export CXRLIB_PAUSE_FILE="$EXECUTED/.paused"
total_start=$SECONDS
index=0
for nb in "${NOTEBOOKS[@]}"; do
  index=$((index + 1))
  name="$(basename "$nb")"
  out="$EXECUTED/$name"
  echo "==> [$index/${#NOTEBOOKS[@]}] $name"
  start=$SECONDS
  rm -f "$CXRLIB_PAUSE_FILE"
  if ! "$PY" -m papermill "$nb" "$out" --kernel "$KERNEL" --cwd "$ROOT/notebooks" \
        --log-output --no-progress-bar -p PROFILE "$PROFILE" \
        ${PARAMS[@]+"${PARAMS[@]}"}; then
    echo "run_all.sh: FAILED in notebook $name" >&2
    echo "run_all.sh: the executed notebook with the error is: $out" >&2
    exit 1
  fi
  echo "    done in $((SECONDS - start)) s"
  if [[ -f "$CXRLIB_PAUSE_FILE" ]]; then
    sed 's/^/    /' "$CXRLIB_PAUSE_FILE"
    echo "==> paused — run again to resume: the same command continues where training stopped"
    exit 75
  fi
done
echo "==> all ${#NOTEBOOKS[@]} notebook(s) ran in $((SECONDS - total_start)) s; outputs in $RESULTS/$PROFILE"
