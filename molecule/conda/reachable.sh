#!/usr/bin/env bash
# Says whether the conda scenario can run on this machine: exits 0 when the Miniforge installer
# the scenario would download answers an HTTPS HEAD within 10 s, otherwise prints one line saying
# so and exits 3. The URL is POPHUB_CONDA_INSTALLER_URL when set (converge.yml passes the same
# variable to the role), else the role's default: the GitHub release asset of
# conda_miniforge_version for this machine's architecture (the box is a container on it).
#   molecule/conda/reachable.sh              check
#   molecule/conda/reachable.sh --print-url  print the URL it would check
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
url=${POPHUB_CONDA_INSTALLER_URL:-}
if [ -z "$url" ]; then
  version=$(sed -n 's/^conda_miniforge_version: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' \
    "$here/../../roles/conda/defaults/main.yml")
  # The same names as __conda_architectures in roles/conda/vars/main.yml.
  arch=$(uname -m)
  url="https://github.com/conda-forge/miniforge/releases/download/$version/Miniforge3-$version-Linux-$arch.sh"
fi

if [ "${1:-}" = --print-url ]; then
  echo "$url"
  exit 0
fi

if curl --head --silent --fail --location --max-time 10 --output /dev/null "$url"; then
  exit 0
fi
echo "conda scenario skipped: $url is not reachable from this machine"
exit 3
