"""The OpenAPI document, produced from the endpoint declarations and their marshmallow schemas."""

from __future__ import annotations

from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, ValidationError, fields

from policies.engine import Policy
from service.core.inputs import ID_PATTERN, RESOURCE_SCHEMAS, QueryInteger, ResourceField, StrictBoolean, StrictInteger
from service.http.declare import ENDPOINTS
from service.http.schemas import ErrorAnswer

STATUS_TEXT = {
    200: "OK",
    201: "Created",
    400: "Bad input: the body, the query string or a path parameter is not valid",
    401: "No API key, or not a valid one",
    403: "The API key lacks the scope, or the acting user lacks the permission",
    404: "No such account, member or support agent",
    409: "The change would break an invariant; nothing was changed",
    413: "The body is too large",
    415: "The body is not sent as Content-Type: application/json",
    503: "The database cannot be reached; nothing was decided or written",
}


def _resource_field(self, field: fields.Field, **kwargs: Any) -> dict:
    if isinstance(field, ResourceField):
        return {
            "oneOf": [{"$ref": f"#/components/schemas/{name}Ref"} for name in RESOURCE_SCHEMAS],
            "discriminator": {"propertyName": "type"},
        }
    return {}


def openapi_document(policy: Policy) -> dict:
    """The document for the policy in force: its actions are part of the contract."""
    return _document_for(policy.sha256, tuple((name, tuple(actions)) for name, actions in policy.actions.items()))


@cache
def _document_for(policy_sha256: str, actions: tuple[tuple[str, tuple[str, ...]], ...]) -> dict:
    plugin = MarshmallowPlugin(schema_name_resolver=_schema_name)
    spec = APISpec(
        title="authz",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[plugin],
        info={
            "description": "Who may do what in a client company's accounting workspace: decisions and facts. "
            "A query parameter an operation does not list, or one given twice, is refused (400)."
        },
        components={"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    )
    plugin.map_to_openapi_type(StrictBoolean, "boolean", None)
    plugin.map_to_openapi_type(StrictInteger, "integer", None)
    plugin.map_to_openapi_type(QueryInteger, "integer", None)
    plugin.converter.add_attribute_function(_resource_field)
    for name, schema in RESOURCE_SCHEMAS.items():
        spec.components.schema(f"{name}Ref", schema=schema)
    spec.components.schema("Error", schema=ErrorAnswer)
    paths: dict[str, dict] = {}
    for declared in ENDPOINTS:
        path = _openapi_path(declared.rule)
        operation: dict[str, Any] = {
            "summary": declared.summary,
            "description": declared.description,
            "tags": [declared.tag],
            "operationId": f"{declared.method.lower()}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '').replace('-', '_')}",
            "responses": {
                str(declared.status): _answer(declared.answer, declared.status),
                **{
                    str(status): {
                        "description": STATUS_TEXT.get(status, "Error"),
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    }
                    for status in declared.errors
                },
            },
        }
        if declared.scope is not None:
            operation["security"] = [{"bearer": []}]
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": ID_PATTERN},
            }
            for name in declared.path_parameters
        ]
        if declared.query.fields:
            parameters.append({"in": "query", "schema": declared.query})
        if parameters:
            operation["parameters"] = parameters
        if declared.body is not None:
            operation["requestBody"] = {
                "required": not _accepts_empty(declared.body),  # a body left out is read as `{}`
                "content": {"application/json": {"schema": declared.body}},
            }
        if getattr(declared.answer, "also_text_csv", False):  # `?format=csv` answers the same as text/csv
            operation["responses"][str(declared.status)]["content"]["text/csv"] = {"schema": {"type": "string"}}
        paths.setdefault(path, {})[declared.method.lower()] = operation
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    document = spec.to_dict()
    _ecma_patterns(document)
    _state_what_validators_check(document, dict(actions))
    _link_operations(document)
    return document


# Which answer feeds which next request (OpenAPI links): what a calling service does after a write.
LINKS = {
    ("post", "/v1/accounts", "201"): {
        "GetAccount": ("get_v1_accounts_account_id", {"account_id": "$response.body#/id"}),
        "InviteMember": ("post_v1_accounts_account_id_members", {"account_id": "$response.body#/id"}),
        "ListMembers": ("get_v1_accounts_account_id_members", {"account_id": "$response.body#/id"}),
        "ChangeBillingSettings": ("patch_v1_accounts_account_id_billing_settings", {"account_id": "$response.body#/id"}),
    },
    ("post", "/v1/accounts/{account_id}/members", "201"): {
        "ChangeRole": (
            "patch_v1_accounts_account_id_members_user",
            {"account_id": "$response.body#/account", "user": "$response.body#/user"},
        ),
        "RemoveMember": (
            "delete_v1_accounts_account_id_members_user",
            {"account_id": "$response.body#/account", "user": "$response.body#/user"},
        ),
    },
    ("put", "/v1/support-agents/{user}", "200"): {
        "RemoveSupportAgent": ("delete_v1_support_agents_user", {"user": "$response.body#/user"}),
    },
}


def _link_operations(document: dict) -> None:
    for (method, path, status), links in LINKS.items():
        response = document["paths"][path][method]["responses"][status]
        response["links"] = {
            name: {"operationId": operation_id, "parameters": parameters}
            for name, (operation_id, parameters) in links.items()
        }


def _ecma_patterns(node: Any) -> None:
    """Python patterns end with `\\Z` (the true end of the text); OpenAPI's ECMA patterns say `^...$`."""
    if isinstance(node, dict):
        pattern = node.get("pattern")
        if isinstance(pattern, str) and pattern.endswith("\\Z"):
            node["pattern"] = "^" + pattern[:-2] + "$"
        for value in node.values():
            _ecma_patterns(value)
    elif isinstance(node, list):
        for value in node:
            _ecma_patterns(value)


def _state_what_validators_check(document: dict, actions: dict[str, tuple[str, ...]]) -> None:
    """Add to the document the rules marshmallow checks in code rather than in field declarations.

    Which actions are valid depends on the resource type (marshmallow takes any
    string and the policy refuses an unknown one): one variant per type says
    exactly which. Also: not both `as_of_revision` and `at_least_revision`, and
    a billing-settings change names at least one setting.
    """
    schemas = document["components"]["schemas"]
    for name in ("Check", "AuthorizeRequest"):
        generic = schemas[name]
        variants = []
        for resource_type, type_actions in actions.items():
            variant = {
                **generic,
                "properties": {
                    **generic["properties"],
                    "action": {"type": "string", "enum": list(type_actions)},
                    "resource": {"$ref": f"#/components/schemas/{resource_type}Ref"},
                },
            }
            if "as_of_revision" in generic["properties"]:
                variant["not"] = {"required": ["as_of_revision", "at_least_revision"]}
            schemas[f"{resource_type}{name}"] = variant
            variants.append({"$ref": f"#/components/schemas/{resource_type}{name}"})
        schemas[name] = {"oneOf": variants}
    schemas["ActionsRequest"]["not"] = {"required": ["as_of_revision", "at_least_revision"]}
    schemas["ListRequest"]["properties"]["action"] = {"type": "string", "enum": list(actions["Account"])}
    schemas["BillingSettingsPatch"]["anyOf"] = [
        {"required": ["restrict_subscription_to_payment_manager"]},
        {"required": ["auto_add_subscription_invoices_to_purchases"]},
    ]


def _accepts_empty(schema: Schema) -> bool:
    """Whether `{}` is a valid body: then the body may be left out (e.g. removing a member as a system change)."""
    try:
        schema.load({})
    except ValidationError:
        return False
    return True


def _answer(schema: Schema | None, status: int) -> dict:
    answer: dict[str, Any] = {"description": STATUS_TEXT.get(status, "OK")}
    if schema is not None:
        answer["content"] = {"application/json": {"schema": schema}}
    return answer


def _openapi_path(rule: str) -> str:
    return "/".join(
        "{" + part[1:-1].split(":")[-1] + "}" if part.startswith("<") else part for part in rule.split("/")
    )


def _schema_name(schema: type[Schema] | Schema) -> str:
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__
    return name[:-6] if name.endswith("Schema") and name != "Schema" else name
