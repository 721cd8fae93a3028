package config

import (
	"errors"
	"fmt"
	"strings"
)

// Azurite's well-known development account (UseDevelopmentStorage=true).
const (
	devAccount  = "devstoreaccount1"
	devKey      = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
	devEndpoint = "http://127.0.0.1:10000/devstoreaccount1"
)

// StorageConnection is the parsed form of a storage connection string.
type StorageConnection struct {
	AccountName string
	AccountKey  string
	// BlobEndpoint is the blob service URL, without a trailing slash.
	BlobEndpoint string
}

// ParseStorageConnectionString understands the forms Azurite and Azure use:
// AccountName/AccountKey with DefaultEndpointsProtocol/EndpointSuffix or an
// explicit BlobEndpoint, and UseDevelopmentStorage=true.
func ParseStorageConnectionString(cs string) (StorageConnection, error) {
	kv := map[string]string{}
	for _, part := range strings.Split(cs, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return StorageConnection{}, errors.New("storage connection string: malformed part")
		}
		kv[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if strings.EqualFold(kv["usedevelopmentstorage"], "true") {
		return StorageConnection{AccountName: devAccount, AccountKey: devKey, BlobEndpoint: devEndpoint}, nil
	}
	c := StorageConnection{AccountName: kv["accountname"], AccountKey: kv["accountkey"], BlobEndpoint: strings.TrimRight(kv["blobendpoint"], "/")}
	if c.AccountName == "" {
		if c.BlobEndpoint == "" {
			return StorageConnection{}, errors.New("storage connection string: AccountName missing")
		}
		if c.AccountName = AccountFromBlobURL(c.BlobEndpoint); c.AccountName == "" {
			return StorageConnection{}, errors.New("storage connection string: AccountName missing")
		}
	}
	if c.BlobEndpoint == "" {
		proto := kv["defaultendpointsprotocol"]
		if proto == "" {
			proto = "https"
		}
		suffix := kv["endpointsuffix"]
		if suffix == "" {
			suffix = "core.windows.net"
		}
		c.BlobEndpoint = fmt.Sprintf("%s://%s.blob.%s", proto, c.AccountName, suffix)
	}
	if c.AccountKey == "" {
		return StorageConnection{}, errors.New("storage connection string: AccountKey missing")
	}
	return c, nil
}
