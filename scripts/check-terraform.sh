#!/usr/bin/env bash
# Static checks of the deployment code under terraform/ (issue 7).
#
#   scripts/check-terraform.sh <path-to-venv> <path-to-ferrymq-binary>
#   scripts/check-terraform.sh --list-env        # print the env names the modules pass, one a line
#
# 1. `terraform fmt -check -recursive terraform/`
# 2. checkov (pinned, installed into the given virtualenv when missing) over terraform/ with zero
#    failed checks; every inline `#checkov:skip=CKV_...` must be listed in docs/deployment.md.
# 3. Every environment variable name the modules hand to the ferrymq container (every FERRYMQ_*
#    and AWS_* token outside comments in terraform/**/*.tf and the Dockerfile) must be accepted
#    by the binary:
#    FERRYMQ_* names must appear as `[env: NAME=...]` in `<binary> serve --help` (taken from the
#    binary, never from a list here); AWS_* names must be ones object_store's
#    AmazonS3Builder::from_env reads.
#
# terraform init/validate/plan are not run: providers cannot be downloaded on this machine.
# Exits non-zero if any step fails; all steps run either way.

set -uo pipefail

CHECKOV_VERSION="3.3.30"

# AWS_* variables object_store's AmazonS3Builder::from_env reads that the modules may set.
AWS_ALLOWED=(
  AWS_ACCESS_KEY_ID
  AWS_SECRET_ACCESS_KEY
  AWS_SESSION_TOKEN
  AWS_DEFAULT_REGION
  AWS_REGION
  AWS_ENDPOINT
  AWS_ENDPOINT_URL
  AWS_ALLOW_HTTP
  AWS_VIRTUAL_HOSTED_STYLE_REQUEST
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TF_DIR="terraform"
DOC="docs/deployment.md"

usage() {
  echo "usage: $0 <path-to-venv> <path-to-ferrymq-binary>" >&2
  echo "       $0 --list-env" >&2
  exit 2
}

# Every FERRYMQ_*/AWS_* token in the HCL and the Dockerfile (its ENV), comment lines (# or //)
# excluded, sorted and unique.
env_names() {
  {
    find "$ROOT/$TF_DIR" -name '*.tf' -not -path '*/.terraform/*' -print0 | xargs -0 cat
    if [[ -f "$ROOT/Dockerfile" ]]; then cat "$ROOT/Dockerfile"; fi
  } \
    | grep -vE '^[[:space:]]*(#|//)' \
    | grep -oE '\b(FERRYMQ|AWS)_[A-Z0-9_]+\b' \
    | sort -u
}

if [[ $# -eq 1 && "$1" == "--list-env" ]]; then
  env_names
  exit 0
fi
[[ $# -eq 2 ]] || usage

VENV="$1"
BIN="$2"
cd "$ROOT" || exit 2

passed=0
failed=0
pass() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAILED: $*" >&2; failed=$((failed + 1)); }

# --- 1. terraform fmt ---------------------------------------------------------------------------
echo "== terraform fmt -check -recursive $TF_DIR/"
if ! command -v terraform >/dev/null 2>&1; then
  fail "terraform fmt: no terraform binary on PATH"
elif fmt_out="$(terraform fmt -check -recursive "$TF_DIR/" 2>/dev/null)"; then
  pass "terraform fmt"
else
  fail "terraform fmt: these files need \`terraform fmt\`: $(echo "$fmt_out" | tr '\n' ' ')"
fi

# --- 2. checkov ---------------------------------------------------------------------------------
echo "== checkov $CHECKOV_VERSION over $TF_DIR/"
checkov_ok=true
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "creating virtualenv $VENV"
  python3 -m venv "$VENV" || { fail "checkov: cannot create virtualenv $VENV"; checkov_ok=false; }
fi
if $checkov_ok; then
  have="$("$VENV/bin/python" -m pip show checkov 2>/dev/null | sed -n 's/^Version: //p')"
  if [[ "$have" != "$CHECKOV_VERSION" ]]; then
    echo "installing checkov==$CHECKOV_VERSION into $VENV (found: ${have:-none})"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" \
      || { fail "checkov: pip install checkov==$CHECKOV_VERSION failed"; checkov_ok=false; }
  fi
fi
if $checkov_ok; then
  # --skip-download: no calls to the vendor's API (no network here, and none needed).
  ck_out="$("$VENV/bin/checkov" -d "$TF_DIR" --framework terraform --quiet --compact --skip-download 2>&1)"
  ck_rc=$?
  summary="$(echo "$ck_out" | grep -m1 -E 'Passed checks: [0-9]+, Failed checks: [0-9]+')"
  if [[ $ck_rc -eq 0 && -n "$summary" && "$summary" == *"Failed checks: 0,"* ]]; then
    pass "checkov: $summary"
  else
    echo "$ck_out" >&2
    fail "checkov (exit $ck_rc): ${summary:-no summary line in its output}"
  fi
fi

# Every inline skip must be documented.
skips="$(grep -rhoE 'checkov:skip=CKV2?_[A-Z0-9]+_[0-9]+' --include='*.tf' "$TF_DIR" | sed 's/checkov:skip=//' | sort -u)"
missing=()
for id in $skips; do
  grep -q -- "$id" "$DOC" 2>/dev/null || missing+=("$id")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  pass "checkov skips documented in $DOC: $(tr "\n" " " <<<"$skips")"
else
  fail "checkov skips not listed in $DOC: ${missing[*]}"
fi

# --- 3. environment variables against the binary ------------------------------------------------
echo "== environment variables passed to the container vs. $BIN serve --help"
names="$(env_names)"
if ! grep -qx 'FERRYMQ_STORE' <<<"$names"; then
  fail "env: found no FERRYMQ_STORE in $TF_DIR/ (is the extraction broken?): $(tr "\n" " " <<<"$names")"
fi

# FERRYMQ_* names come from the binary itself. Its help is not printed: clap shows the current
# value of a variable that is set, which may be a secret.
accepted=""
if [[ ! -x "$BIN" ]]; then
  fail "env: $BIN is not an executable"
elif ! help_out="$("$BIN" serve --help 2>&1)"; then
  fail "env: \`$BIN serve --help\` failed"
else
  accepted="$(grep -oE '\[env: FERRYMQ_[A-Z0-9_]+[]=]' <<<"$help_out" | sed 's/^\[env: //; s/[]=]$//' | sort -u)"
  [[ -n "$accepted" ]] || fail "env: \`$BIN serve --help\` lists no [env: FERRYMQ_...] variables"
fi

bad=()
for n in $names; do
  case "$n" in
    FERRYMQ_*)
      if [[ -n "$accepted" ]] && ! grep -qx -- "$n" <<<"$accepted"; then
        bad+=("$n (not an [env: ...] of \`ferrymq serve\`)")
      fi
      ;;
    AWS_*)
      ok=false
      for a in "${AWS_ALLOWED[@]}"; do [[ "$n" == "$a" ]] && ok=true; done
      $ok || bad+=("$n (not read by object_store's AmazonS3Builder::from_env; allowed: ${AWS_ALLOWED[*]})")
      ;;
  esac
done
if [[ ${#bad[@]} -eq 0 && -n "$accepted" ]]; then
  pass "env: $(tr "\n" " " <<<"$names")"
elif [[ ${#bad[@]} -gt 0 ]]; then
  for b in "${bad[@]}"; do echo "  unknown environment variable: $b" >&2; done
  fail "env: the modules pass ${#bad[@]} variable(s) the binary does not accept"
fi

echo "terraform: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
