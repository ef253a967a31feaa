#!/usr/bin/env bash
# checkov policy gate (make scan). Scans, offline:
#   <env>       cdktf.out/stacks/<env>/cdk.tf.json   --framework terraform_json
#   <env>-plan  cdktf.out/stacks/<env>/plan.json     --framework terraform_plan (when `make plan` made it)
#   modules     modules/                             --framework terraform
#   bootstrap   bootstrap/ (the state bucket)         --framework terraform
# and prints one line per target, `scan <target>: passed=N failed=N skipped=N`, with the SARIF
# (and JSON) report in reports/checkov-<target>.sarif (.json).
#
#   scripts/scan.sh               every env in envs/*.toml (and its plan, if any), modules/ and bootstrap/
#   scripts/scan.sh bootstrap     only bootstrap/ (its skips are inline `checkov:skip` comments, with reasons)
#   scripts/scan.sh dev prod      only those envs (and their plans)
#   scripts/scan.sh modules       only modules/ (combine freely: scripts/scan.sh dev modules)
#   scripts/scan.sh --install     only build the checkov venv (make setup)
#
# Exit 0: nothing failed. 1: a target has a failed check. 2: a target could not be scanned
# (no synthesized stack: run `make synth`; checkov crashed; a file did not parse; nothing was
# evaluated) or the skip file is invalid.
#
# Why terraform_json: `--framework terraform` reads only .tf/.hcl. Given cdk.tf.json with -f it
# runs no check and exits 0 (one "no runners" log line); given the stack directory it scans only
# the module copy under assets/ and never the stack. Each target's counts are checked to be
# non-zero so a scan that evaluates nothing fails the gate instead of passing it.
#
# Reviewed skips: .checkov-skips.yaml (CHECKOV_SKIPS_FILE overrides), one check on one resource
# per entry, format in scripts/checkov_skips.py. They reach checkov as a per-target `--baseline`
# (with --output-baseline-as-skipped, so they show as SKIPPED in the CLI and SARIF output):
# inline `checkov:skip` comments do not exist in Terraform JSON or plan JSON.
#
# The checkov venv (.venv-checkov, pinned by requirements-checkov.txt) is built here and rebuilt
# whenever that file or the Python version changes.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python="${PYTHON:-python3}"
venv=.venv-checkov
requirements="requirements-checkov.txt"
stamp="$venv/.installed"
skips_file="${CHECKOV_SKIPS_FILE:-.checkov-skips.yaml}"
reports=reports
stacks="${CDKTF_OUTDIR:-cdktf.out}/stacks"  # CDKTF_OUTDIR: scan another synthesis (tests)

die() {
  echo "scan: error: $*" >&2
  exit 2
}

# ---------------------------------------------------------------- toolchain
want="$(sha256sum "$requirements" | cut -d' ' -f1) python$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ ! -x $venv/bin/checkov || ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  echo "scan: installing checkov into $venv from $requirements"
  rm -rf "$venv"
  "$python" -m venv "$venv" || die "could not create $venv with $python"
  # --no-deps: the file pins every transitive dependency; pip check proves it is complete.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$requirements" ||
    die "could not install $requirements into $venv"
  "$venv/bin/python" -m pip check --disable-pip-version-check >/dev/null || die "$requirements is incomplete: $("$venv/bin/python" -m pip check)"
  echo "$want" >"$stamp"
fi
if [[ ${1:-} == --install ]]; then
  exit 0
fi

# ---------------------------------------------------------------- what to scan
all_envs=()
if [[ -n ${CDKTF_OUTDIR:-} ]]; then # another synthesis (tests): its stacks are the envs
  for file in "$stacks"/*/cdk.tf.json; do
    [[ -e $file ]] && all_envs+=("$(basename "$(dirname "$file")")")
  done
else
  for file in envs/*.toml; do
    [[ -e $file ]] && all_envs+=("$(basename "$file" .toml)")
  done
fi

envs=()
scan_modules=false
scan_bootstrap=false
if (($# == 0)); then
  envs=("${all_envs[@]}")
  scan_modules=true
  scan_bootstrap=true
else
  for arg in "$@"; do
    if [[ $arg == modules ]]; then
      scan_modules=true
    elif [[ $arg == bootstrap ]]; then
      scan_bootstrap=true
    elif [[ " ${all_envs[*]} " == *" $arg "* ]]; then
      envs+=("$arg")
    else
      die "unknown target '$arg': expected modules, bootstrap or an env of envs/*.toml (${all_envs[*]:-none})"
    fi
  done
fi
for env in "${envs[@]}"; do
  [[ -f $stacks/$env/cdk.tf.json ]] || die "$stacks/$env/cdk.tf.json is missing: run make synth first"
done

checkov="$venv/bin/checkov"
helper=("$venv/bin/python" scripts/checkov_skips.py)

# ---------------------------------------------------------------- no network
# --skip-download (below) stops the platform downloads; these stop the rest: the guideline /
# BC-id mapping fetch and the PyPI "update available" lookup, which --skip-download leaves on.
export BC_SKIP_MAPPING=TRUE
export CKV_SKIP_PACKAGE_UPDATE_CHECK=true
# A platform key in the environment would make checkov upload the results.
unset BC_API_KEY PRISMA_API_URL
# Plan scans: an attribute that is "known after apply" (the secret's kms_key_id is the ARN of a
# key created in the same apply) counts as set, so "is it set" checks (CKV_AWS_149) do not fail
# on every first plan; checks that compare a value still fail on an unknown one.
export EVAL_TF_PLAN_AFTER_UNKNOWN=true

# Validate the skip file once, before any scan.
skip_args_summary=()
if [[ -f $skips_file ]]; then
  "${helper[@]}" check --skips "$skips_file" || exit 2
  skip_args_summary=(--skips "$skips_file")
fi

mkdir -p "$reports"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

summaries=()
status=0

# scan_target NAME FRAMEWORK (-f FILE | -d DIR)
scan_target() {
  local name=$1 framework=$2
  shift 2
  local json="$reports/checkov-$name.json" sarif="$reports/checkov-$name.sarif"
  local baseline="$work/$name.baseline.json" unfiltered=() skip_args=() rc=0 line
  local common=("$@" --framework "$framework" --skip-download --compact)
  rm -f "$json" "$sarif"

  if [[ -f $skips_file ]]; then
    "${helper[@]}" baseline --skips "$skips_file" --target "$name" --out "$baseline"
  fi
  if [[ -f $baseline ]]; then
    skip_args=(--baseline "$baseline" --output-baseline-as-skipped)
    # checkov drops all passed checks from a report filtered by a baseline (bridgecrewio/checkov#4945):
    # count them from the same scan without it.
    "$checkov" "${common[@]}" -o json >"$work/$name.unfiltered.json" 2>"$work/$name.unfiltered.err" || true
    unfiltered=(--unfiltered "$work/$name.unfiltered.json")
  fi

  echo
  echo "================ scan $name ($framework: $*)"
  "$checkov" "${common[@]}" "${skip_args[@]}" \
    -o cli -o json -o sarif --output-file-path "console,$json,$sarif" || rc=$?
  if ((rc > 1)); then
    summaries+=("scan $name: error: checkov exited $rc")
    status=2
    return
  fi

  rc=0
  line="$("${helper[@]}" summary --target "$name" --report "$json" --sarif "$sarif" \
    --used-out "$work/$name.used.json" "${unfiltered[@]}" "${skip_args_summary[@]}")" || rc=$?
  summaries+=("$line")
  if ((rc == 1)); then
    ((status == 2)) || status=1
  elif ((rc != 0)); then
    status=2
  fi
}

for env in "${envs[@]}"; do
  scan_target "$env" terraform_json -f "$stacks/$env/cdk.tf.json"
  if [[ -f $stacks/$env/plan.json ]]; then
    scan_target "$env-plan" terraform_plan -f "$stacks/$env/plan.json"
  else
    rm -f "$reports/checkov-$env-plan.json" "$reports/checkov-$env-plan.sarif"  # no stale plan report
    summaries+=("scan $env-plan: not scanned: no $stacks/$env/plan.json (make plan ENV=$env makes it)")
  fi
done
if $scan_modules; then
  scan_target modules terraform -d modules
fi
if $scan_bootstrap; then
  scan_target bootstrap terraform -d bootstrap
fi

echo
printf '%s\n' "${summaries[@]}"
if ((${#skip_args_summary[@]})); then
  shopt -s nullglob
  "${helper[@]}" unused "${skip_args_summary[@]}" "$work"/*.used.json
fi
case $status in
  0) echo "scan: passed" ;;
  1) echo "scan: FAILED: see the failed checks above (reports in $reports/)" ;;
  *) echo "scan: ERROR: a target could not be scanned" ;;
esac
exit "$status"
