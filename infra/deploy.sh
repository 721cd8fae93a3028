#!/usr/bin/env bash
# Deploy ffpipe to Azure, or tear it down. No keys: every step authenticates
# with the signed-in Azure CLI user (az login) and every resource with managed
# identities. See docs/deploy.md.
#
#   ./infra/deploy.sh deploy  RG LOCATION PREFIX
#   ./infra/deploy.sh destroy RG LOCATION PREFIX
#
# Environment:
#   FFPIPE_PARAMETERS  optional parameters file for main.bicep
#                      (see infra/main.parameters.example.json)
#   FFPIPE_YES=1       destroy without asking
#   FFPIPE_RETRY_DELAY seconds before the first retry of a step that can fail
#                      while new role assignments propagate (default 30,
#                      doubled per retry)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

say() { printf '==> %s\n' "$*"; }
die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }

usage() {
	cat >&2 <<'USAGE'
usage: infra/deploy.sh deploy|destroy RESOURCE_GROUP LOCATION PREFIX
  deploy   create or update every resource, publish the function app,
           then subscribe OnBlobCreated to the input container
  destroy  delete the resource group and everything in it
PREFIX: 3-11 lower-case letters and digits, starting with a letter.
USAGE
	exit 2
}

# retry TRIES WHAT CMD...: run CMD until it succeeds, at most TRIES times,
# waiting FFPIPE_RETRY_DELAY seconds after the first failure and twice as
# long after each next one. For steps that use role assignments made by the
# deployment just before: Azure applies those within minutes, not at once.
retry() {
	local tries=$1 what=$2 delay=${FFPIPE_RETRY_DELAY:-30} n=1
	shift 2
	until "$@"; do
		if [ "$n" -ge "$tries" ]; then
			printf 'deploy.sh: %s failed %d times; re-run deploy.sh once the cause is fixed (it is idempotent)\n' "$what" "$n" >&2
			return 1
		fi
		say "$what failed (attempt $n of $tries); retrying in ${delay}s: new role assignments can take minutes to apply"
		sleep "$delay"
		n=$((n + 1))
		delay=$((delay * 2))
	done
}

# suffix_filter LIST: the JSON array eventgrid.bicep's subjectSuffixes takes,
# from FFPIPE_ALLOWED_SUFFIXES (comma-separated). Empty (no suffix filter;
# OnBlobCreated still checks) when there are more than the subscription's
# advanced filters can hold.
suffix_filter() {
	local list=$1 json="" n=0 s
	local -a parts
	IFS=',' read -r -a parts <<<"$list"
	for s in ${parts[@]+"${parts[@]}"}; do
		s="${s#"${s%%[![:space:]]*}"}"
		s="${s%"${s##*[![:space:]]}"}"
		[ -n "$s" ] || continue
		[[ $s =~ ^[A-Za-z0-9._-]+$ ]] || die "FFPIPE_ALLOWED_SUFFIXES: suffix '$s' has characters other than letters, digits, '.', '_' and '-'"
		json+="${json:+,}\"$s\""
		n=$((n + 1))
	done
	if [ "$n" -gt 21 ]; then
		say "FFPIPE_ALLOWED_SUFFIXES lists $n suffixes, more than an Event Grid subscription can filter (21): subscribing without a suffix filter; OnBlobCreated filters" >&2
		json=""
	fi
	printf '[%s]' "$json"
}

need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2"
}

[ $# -eq 4 ] || usage
action=$1 rg=$2 location=$3 prefix=$4
case "$action" in
deploy | destroy) ;;
*) usage ;;
esac
[[ $prefix =~ ^[a-z][a-z0-9]{2,10}$ ]] || die "PREFIX must be 3-11 lower-case letters and digits starting with a letter, got '$prefix'"
[ -n "$rg" ] || die "RESOURCE_GROUP is empty"
[ -n "$location" ] || die "LOCATION is empty"

need az "install the Azure CLI (https://learn.microsoft.com/cli/azure/install-azure-cli)"
az account show --only-show-errors >/dev/null 2>&1 || die "not signed in: run 'az login' (and 'az account set --subscription ...')"

deploy() {
	need func "install Azure Functions Core Tools v4 (npm i -g azure-functions-core-tools@4)"
	need go "install Go (see go.mod)"
	need make "install make"
	az bicep version >/dev/null 2>&1 || az bicep install

	local sub
	sub=$(az account show --query name -o tsv)
	say "subscription: $sub; resource group $rg in $location; prefix $prefix"

	say "resource group"
	az group create --name "$rg" --location "$location" --tags app=ffpipe --only-show-errors -o none

	# The signed-in user gets rights to upload inputs and read results, so
	# the checks in docs/deploy.md work with --auth-mode login. A service
	# principal (CI) has no signed-in user: skip.
	local operator
	operator=$(az ad signed-in-user show --query id -o tsv 2>/dev/null || true)
	[ -n "$operator" ] || say "no signed-in user object id: skipping operator roles"

	local params=(prefix="$prefix" location="$location" operatorPrincipalId="$operator")
	local files=()
	if [ -n "${FFPIPE_PARAMETERS:-}" ]; then
		[ -f "$FFPIPE_PARAMETERS" ] || die "FFPIPE_PARAMETERS: no such file $FFPIPE_PARAMETERS"
		files=(--parameters "@$FFPIPE_PARAMETERS")
	fi

	say "infrastructure (main.bicep): storage, Service Bus, Batch + pool, Function App, identities, roles"
	az deployment group create \
		--resource-group "$rg" \
		--name ffpipe-main \
		--template-file "$here/main.bicep" \
		${files[@]+"${files[@]}"} \
		--parameters "${params[@]}" \
		--only-show-errors -o none

	out() {
		az deployment group show --resource-group "$rg" --name ffpipe-main \
			--query "properties.outputs.$1.value" -o tsv
	}
	local app storage input deadletter egid suffix suffixes
	app=$(out functionAppName)
	storage=$(out dataStorageName)
	input=$(out inputContainerName)
	deadletter=$(out deadLetterContainerName)
	egid=$(out eventGridIdentityName)
	[ -n "$app" ] || die "main.bicep returned no functionAppName"

	say "package (make package -> dist/)"
	make -C "$root" package

	# --custom: the worker runtime of this app (local.settings.json is not
	# published). On Flex Consumption, func checks it against
	# functionAppConfig.runtime.name and deploys with the caller's token.
	# The platform writes the package to the deployment container with the
	# app's identity, whose role was assigned moments ago: retry a 403.
	say "publish $app"
	publish() { (cd "$root/dist" && func azure functionapp publish "$app" --custom); }
	retry 5 "publish $app" publish

	# The AzureFunction endpoint needs the function to be indexed, which
	# can lag the publish by a minute or two.
	say "waiting for $app to list OnBlobCreated"
	local tries=0
	until az functionapp function show --resource-group "$rg" --name "$app" \
		--function-name OnBlobCreated --query name -o tsv >/dev/null 2>&1; do
		tries=$((tries + 1))
		[ "$tries" -lt 30 ] || die "OnBlobCreated did not appear in $app after 5 minutes; check the publish output, then re-run"
		sleep 10
	done

	suffix=$(az functionapp config appsettings list --resource-group "$rg" --name "$app" \
		--query "[?name=='FFPIPE_ALLOWED_SUFFIXES'].value | [0]" -o tsv)
	suffixes=$(suffix_filter "$suffix")

	# Creating the subscription can fail while the function's indexing and
	# the role assignments main.bicep made are still settling: retry.
	say "Event Grid subscription (eventgrid.bicep): $storage/$input -> $app/OnBlobCreated, suffixes $suffixes"
	subscribe() {
		az deployment group create \
			--resource-group "$rg" \
			--name ffpipe-eventgrid \
			--template-file "$here/eventgrid.bicep" \
			--parameters location="$location" functionAppName="$app" dataStorageName="$storage" \
			inputContainerName="$input" deadLetterContainerName="$deadletter" \
			eventGridIdentityName="$egid" subjectSuffixes="$suffixes" \
			--only-show-errors -o none
	}
	retry 3 "Event Grid subscription" subscribe

	say "done. Try it:"
	cat <<DONE
  az storage blob upload --auth-mode login --account-name $storage -c $input -n demo/a.mp4 -f some.mp4
  az storage blob list   --auth-mode login --account-name $storage -c $(out outputContainerName) --prefix demo/ -o table
  (role assignments can take a few minutes to apply; see docs/deploy.md)
DONE
}

destroy() {
	if ! az group exists --name "$rg" | grep -qx true; then
		say "resource group $rg does not exist: nothing to do"
		return
	fi
	if [ "${FFPIPE_YES:-}" != 1 ]; then
		[ -t 0 ] || die "refusing to delete $rg without a terminal; set FFPIPE_YES=1"
		read -r -p "Delete resource group $rg and everything in it? [y/N] " answer
		[ "$answer" = y ] || [ "$answer" = Y ] || die "cancelled"
	fi
	say "deleting resource group $rg (waits until it is gone)"
	az group delete --name "$rg" --yes --only-show-errors
	say "deleted $rg"
}

case "$action" in
deploy) deploy ;;
destroy) destroy ;;
*) usage ;;
esac
