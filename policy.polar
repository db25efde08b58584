# Who may do what in a client company's accounting workspace.
#
# Actors     User: a person. Some users are support agents (customer service).
# Resources  Account             a client company's workspace and its billing settings
#            Subscription        the account's subscription to the product
#            SubscriptionInvoice an invoice of that subscription
#            PaymentMethod       a card that pays for the subscription; it has an owner
#            Membership          one user's role on one account
#            Document            a sale, a purchase, a bank line... in the workspace
# Roles      admin, collaborator, reader, payment_manager: one per user and account.
#
# The one rule that makes this policy special: an account may restrict
# subscription management to its payment manager. An accounting firm that pays
# for its client then manages the subscription alone, sees none of the client's
# workspace, and the client's admin no longer sees the subscription page.
#
# "Subscription managers" of an account are its payment manager, plus its
# admins unless the account restricts subscription management to the payment
# manager. Anything this file does not grant is denied.

# A user may do what their permissions allow; nothing else is allowed.
allow(actor, action, resource) if
  has_permission(actor, action, resource);

actor User {}


# ---------------------------------------------------------------- Account

resource Account {
  permissions = [
    "read",
    "view_workspace", "edit_workspace",
    "view_members", "manage_members",
    "view_subscription", "manage_subscription",
    "manage_billing_settings", "manage_payment_methods"
  ];
  roles = ["admin", "collaborator", "reader", "payment_manager", "subscription_manager"];

  # Every member, whatever their role, sees the account in their account switcher.
  "read" if "admin";
  "read" if "collaborator";
  "read" if "reader";
  "read" if "payment_manager";

  # Admins, collaborators and readers see every page of the workspace:
  # dashboard, sales, purchases, bank, contacts, reports.
  "view_workspace" if "admin";
  "view_workspace" if "collaborator";
  "view_workspace" if "reader";

  # Admins and collaborators change the workspace; readers only look.
  "edit_workspace" if "admin";
  "edit_workspace" if "collaborator";

  # Only admins see and manage the members (invite, change a role).
  "view_members" if "admin";
  "manage_members" if "admin";

  # Subscription managers see and manage the subscription page: the
  # subscription, its billing settings and its payment methods.
  "view_subscription" if "subscription_manager";
  "manage_subscription" if "subscription_manager";
  "manage_billing_settings" if "subscription_manager";
  "manage_payment_methods" if "subscription_manager";
}

# A user holds on an account the role their membership gives them.
has_role(user: User, role: String, account: Account) if
  membership in user.memberships and
  membership.account_id = account.id and
  membership.role = role;

# The payment manager is always a subscription manager.
has_role(user: User, "subscription_manager", account: Account) if
  has_role(user, "payment_manager", account);

# An admin is a subscription manager too, unless the account restricts
# subscription management to its payment manager.
has_role(user: User, "subscription_manager", account: Account) if
  has_role(user, "admin", account) and
  not account.restrict_subscription_to_payment_manager;


# ---------------------------------------------------------------- Subscription

resource Subscription {
  permissions = ["view", "view_prices", "manage"];
  relations = { account: Account };

  # Subscription managers of its account see it, see its prices and manage it.
  "view" if "subscription_manager" on "account";
  "view_prices" if "subscription_manager" on "account";
  "manage" if "subscription_manager" on "account";
}

# A subscription belongs to the account it pays for.
has_relation(account: Account, "account", subscription: Subscription) if
  subscription.account = account;

# Support agents see any subscription (to help a customer), but not its prices.
has_permission(agent: User, "view", _subscription: Subscription) if
  agent.is_support_agent;


# ---------------------------------------------------------------- SubscriptionInvoice

resource SubscriptionInvoice {
  permissions = ["view", "download"];
  relations = { account: Account };

  # Subscription managers of its account see and download it.
  "view" if "subscription_manager" on "account";
  "download" if "subscription_manager" on "account";
}

# An invoice belongs to the account whose subscription it bills.
has_relation(account: Account, "account", invoice: SubscriptionInvoice) if
  invoice.account = account;

# While the account adds subscription invoices to its purchases, the invoice
# sits in the purchases: whoever sees the workspace sees and downloads it.
has_permission(user: User, action: String, invoice: SubscriptionInvoice) if
  action in ["view", "download"] and
  invoice.account.auto_add_subscription_invoices_to_purchases and
  has_permission(user, "view_workspace", invoice.account);


# ---------------------------------------------------------------- PaymentMethod

resource PaymentMethod {
  permissions = ["view", "delete"];
  relations = { account: Account };

  # Subscription managers of its account see it.
  "view" if "subscription_manager" on "account";
}

# A payment method is registered on one account.
has_relation(account: Account, "account", method: PaymentMethod) if
  method.account = account;

# Its owner deletes it, while the owner is a subscription manager of the account.
has_permission(owner: User, "delete", method: PaymentMethod) if
  method.owner = owner and
  has_role(owner, "subscription_manager", method.account);

# Support agents see and delete any payment method (the last step of ending a
# partner's payment: customer service deletes the former payment manager's card).
has_permission(agent: User, "view", _method: PaymentMethod) if
  agent.is_support_agent;
has_permission(agent: User, "delete", _method: PaymentMethod) if
  agent.is_support_agent;


# ---------------------------------------------------------------- Membership

resource Membership {
  permissions = ["remove", "change_role"];
  relations = { account: Account };
}

# A membership is one user's role on one account.
has_relation(account: Account, "account", membership: Membership) if
  membership.account = account;

# Admins remove members and change their role; a membership that does not
# exist grants nothing. While the account restricts subscription management to
# its payment manager, not even an admin removes the payment manager or changes
# their role: the payment manager must first lift the restriction.
has_permission(admin: User, action: String, membership: Membership) if
  action in ["remove", "change_role"] and
  has_role(admin, "admin", membership.account) and
  has_role(membership.user, membership.role, membership.account) and
  not (membership.role = "payment_manager" and
       membership.account.restrict_subscription_to_payment_manager);


# ---------------------------------------------------------------- Document

resource Document {
  permissions = ["view", "edit", "delete"];
  relations = { account: Account };

  # Admins, collaborators and readers of its account see it.
  "view" if "admin" on "account";
  "view" if "collaborator" on "account";
  "view" if "reader" on "account";

  # Admins and collaborators edit it.
  "edit" if "admin" on "account";
  "edit" if "collaborator" on "account";

  # Only admins delete it.
  "delete" if "admin" on "account";
}

# A document belongs to the workspace of one account.
has_relation(account: Account, "account", document: Document) if
  document.account = account;
