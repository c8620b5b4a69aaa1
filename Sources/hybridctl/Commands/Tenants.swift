import ArgumentParser
import Foundation
import HybridStore

/// Quota options shared by `tenants create` and `tenants quota`.
struct QuotaOptions: ParsableArguments {
    @Option(name: .customLong("max-rows"), help: "Rows the tenant may store (all tiers, all collections).") var maxRows:
        Int64?
    @Option(name: .customLong("max-bytes"), help: "Logical bytes the tenant may store.") var maxBytes: Int64?
    @Option(name: .customLong("max-queries"), help: "Queries per --query-period.") var maxQueries: Int64?
    @Option(name: .customLong("query-period"), help: "Seconds of a query-quota window.") var queryPeriod: Int64?

    var quota: TenantQuota {
        TenantQuota(
            maxRows: maxRows, maxBytes: maxBytes, maxQueries: maxQueries,
            queryPeriodSeconds: queryPeriod ?? (maxQueries == nil ? nil : 3600))
    }
}

extension HybridCtl {
    struct Tenants: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tenants",
            abstract: "Create tenants, set their quotas, drop them.",
            discussion:
                "A collection names its tenant column at creation (`create --tenant-column`); read and write as a tenant with --tenant NAME.",
            subcommands: [Create.self, Quota.self, Drop.self])

        struct Create: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create a tenant, optionally with quotas.")
            @OptionGroup var store: StoreOptions
            @Argument(help: "Tenant name.") var name: String
            @OptionGroup var quota: QuotaOptions

            func run() throws {
                try store.run { hs in
                    try hs.createTenant(name, quota: quota.quota)
                    print("created tenant \(name)")
                }
            }
        }

        struct Quota: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Set a tenant's quotas (those not given become unlimited); creates the tenant when missing.")
            @OptionGroup var store: StoreOptions
            @Argument(help: "Tenant name.") var name: String
            @OptionGroup var quota: QuotaOptions

            func run() throws {
                try store.run { hs in
                    try hs.setQuota(quota.quota, for: name)
                    let q = try hs.quota(of: name)
                    print(
                        "tenant \(name): max rows \(q.maxRows.map(String.init) ?? "unlimited"), max bytes \(q.maxBytes.map(String.init) ?? "unlimited"), max queries \(q.maxQueries.map { "\($0) per \(q.queryPeriodSeconds ?? 0) s" } ?? "unlimited")"
                    )
                }
            }
        }

        struct Drop: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Drop a tenant: its rows in every collection, its usage and its quotas, in one transaction.")
            @OptionGroup var store: StoreOptions
            @Argument(help: "Tenant name.") var name: String

            func run() throws {
                try store.run { hs in
                    let rows = try hs.dropTenant(name)
                    print("dropped tenant \(name): \(rows) rows")
                }
            }
        }
    }
}
