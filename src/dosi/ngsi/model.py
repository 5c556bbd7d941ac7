"""The hub's internal entity form, shared by every layer.

Entities are stored and processed in *expanded normalized* form: the NGSI-LD
normalized representation with every term (entity types, attribute names,
sub-attribute names, VocabProperty vocab values, Relationship objectType)
expanded to a full IRI against the request's @context. Compaction back to
terms happens only at the API edge, with the caller's @context.

    {
      "id": "urn:ngsi-ld:TrafficFlowObserved:1",
      "type": ["https://smartdatamodels.org/dataModel.Transportation/TrafficFlowObserved"],
      "scope": ["/Busan/EcoDelta"],                    # optional
      "createdAt": "2026-11-25T10:00:00.000000Z",      # system attributes, always present
      "modifiedAt": "2026-11-25T10:00:00.000000Z",
      "https://smartdatamodels.org/intensity": [       # attribute: ALWAYS a list of instances
        {
          "type": "Property",
          "value": 42,
          "observedAt": "2026-11-25T10:00:00.000Z",    # optional
          "unitCode": "E50",                            # optional
          "datasetId": "urn:ngsi-ld:Dataset:a",         # absent = the default instance
          "createdAt": "...", "modifiedAt": "...",
          "https://uri.etsi.org/ngsi-ld/default-context/accuracy": {  # sub-attribute:
              "type": "Property", "value": 0.9                          # ONE instance dict
          }
        }
      ]
    }

Instance value keys by attribute type: Property and GeoProperty -> "value";
Relationship -> "object" (URI string, or list of URI strings) and optional
"objectType" (expanded IRI); LanguageProperty -> "languageMap"
({lang: str | [str]}); VocabProperty -> "vocab" (expanded IRI or list of them);
ListProperty -> "valueList" (list); ListRelationship -> "objectList" (list of
URI strings); JsonProperty -> "json" (any JSON, never expanded).
"""

from __future__ import annotations

from typing import Any

Entity = dict[str, Any]
Instance = dict[str, Any]

NGSI_LD = "https://uri.etsi.org/ngsi-ld/"
DEFAULT_VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
CORE_CONTEXT_V18 = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
CORE_CONTEXT_V19 = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
CORE_CONTEXT_V1 = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
CORE_CONTEXT_URLS = frozenset({CORE_CONTEXT_V1, CORE_CONTEXT_V18, CORE_CONTEXT_V19})
DEFAULT_CORE_CONTEXT = CORE_CONTEXT_V18

# Entity members that are not attributes (their names are never expanded).
ENTITY_RESERVED = frozenset(
    {"id", "type", "scope", "createdAt", "modifiedAt", "deletedAt", "@context"}
)

# Members of an attribute instance that are not sub-attributes.
INSTANCE_RESERVED = frozenset(
    {
        "type",
        "value",
        "object",
        "objectType",
        "languageMap",
        "vocab",
        "valueList",
        "objectList",
        "json",
        "datasetId",
        "observedAt",
        "unitCode",
        "createdAt",
        "modifiedAt",
        "deletedAt",
        "instanceId",
        "lang",
        "previousValue",
        "previousObject",
        "previousLanguageMap",
        "previousVocab",
        "previousValueList",
        "previousObjectList",
        "previousJson",
    }
)

# attribute type -> the key holding its value
VALUE_KEY: dict[str, str] = {
    "Property": "value",
    "GeoProperty": "value",
    "Relationship": "object",
    "LanguageProperty": "languageMap",
    "VocabProperty": "vocab",
    "ListProperty": "valueList",
    "ListRelationship": "objectList",
    "JsonProperty": "json",
}
ATTRIBUTE_TYPES = frozenset(VALUE_KEY)

# The GeoProperties the spec names; "location" is the default for geo-queries.
LOCATION = NGSI_LD + "location"
OBSERVATION_SPACE = NGSI_LD + "observationSpace"
OPERATION_SPACE = NGSI_LD + "operationSpace"
