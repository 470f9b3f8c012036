#!/bin/bash
# Downloads exactly the wheels the GPU suite needs on the device machine into DIR (default .whl):
# the device's python3 (3.12, x86-64) has torch, numpy, yaml, tqdm, scipy, pandas, scikit-learn,
# seaborn, opencv, but not what the engine's parameters (pydantic) and the authors' code (kornia) import.
# With --pipelines also, into DIR/pipelines, the Kedro stack for `gpu_suite.py --pipelines` (kedro, kedro-datasets, kedro-mlflow,
# mlflow and what they need beyond the device's image: 34 MiB more, 42 MiB in all; the device carries
# at most 64 MiB with the working tree, which is about 5 MiB). The list is the dependency closure resolved
# on 2026-12-04 for Python 3.12 minus the packages the device image already has (KINDS.md).
# usage: benchmarks/fetch_device_wheels.sh [--pipelines] [DIR]   (from the repository root; DIR is git-ignored)
set -euo pipefail
PIPELINES=0
if [ "${1:-}" = "--pipelines" ]; then PIPELINES=1; shift; fi
DIR=${1:-.whl}
PY=${PYTHON:-python3}
mkdir -p "$DIR"
WHEELS="kornia==0.8.2 kornia-rs==0.2.0 pydantic==2.12.5 pydantic-core==2.41.5 annotated-types==0.7.0
        typing-inspection==0.4.2 typing-extensions==4.15.0"
PIPE_WHEELS="
  alembic==1.20.1 antlr4_python3_runtime==4.13.2 appdirs==1.4.4 arrow==1.4.0 binaryornot==0.6.0 
  blinker==1.9.0 cachetools==8.0.2 cffi==2.1.1 cookiecutter==2.7.1 cryptography==50.0.2 
  databricks_sdk==0.167.0 docker==7.2.0 dynaconf==3.3.5 fastapi==0.165.0 flask==3.1.3 
  flask_cors==6.0.5 gitdb==4.0.12 gitpython==3.2.1 google_auth==2.63.0 graphene==3.4.3 
  graphql_core==3.3.2 graphql_relay==3.2.0 greenlet==3.5.6 gunicorn==27.0.1 huey==3.5.4 
  importlib_metadata==10.2.0 itsdangerous==2.2.0 kedro==1.7.0 kedro_datasets==9.6.0 
  kedro_mlflow==2.0.3 kedro_telemetry==0.9.0 lazy_importer==0.1.0 mako==1.4.3 mlflow==3.17.2 
  mlflow_skinny==3.17.2 mlflow_tracing==3.17.2 more_itertools==11.2.1 omegaconf==2.3.0 
  opentelemetry_api==1.45.2 opentelemetry_proto==1.45.2 opentelemetry_sdk==1.45.2 
  opentelemetry_semantic_conventions==0.66b2 parse==1.22.4 prettytable==3.19.0 pyasn1==0.6.5 
  pyasn1_modules==0.4.2 pycparser==3.12 python_dotenv==1.2.4 python_slugify==9.2.0 skops==0.16.0 
  smmap==5.0.3 sqlalchemy==2.0.44 sqlparse==0.6.1 starlette==1.10.0 text_unidecode==1.3 
  tomli_w==1.2.0 tzdata==2026.6 uvicorn==0.55.0 wcwidth==0.9.4"
fetch() {  # fetch DEST WHEEL...
  local dest=$1; shift
  mkdir -p "$dest"
  for w in "$@"; do
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dest" "$w"
  done
}
# shellcheck disable=SC2086
fetch "$DIR" $WHEELS
# shellcheck disable=SC2086
[ "$PIPELINES" = 1 ] && fetch "$DIR/pipelines" $PIPE_WHEELS
ls -la "$DIR"
du -sh "$DIR"
