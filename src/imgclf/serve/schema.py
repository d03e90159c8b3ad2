"""What /openapi.json says of /predict, for clients generated from it: the multipart body, the query parameters
with what they accept, and the answer's shape. The route reads the body itself (streamed, with its own limits and
errors), so FastAPI cannot infer the body; these models document it and validate nothing at request time."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

TOP_K = "How many classes to list per image: a whole number >= 1 (above the number of classes: all). Default 3."
UNKNOWN = ("on or off (also true/false, 1/0): off gives the best class even to an image below the unknown threshold. "
           "Default: the server's.")
THRESHOLD = ("Multi-label runs only: one decision threshold between 0 and 1 (exclusive) for every label instead of "
             "the ones tuned on validation.")


class Ranked(BaseModel):
    label: str
    probability: float


class PredictionEntry(BaseModel):
    """One uploaded file's answer, with the keys of `imgclf predict --format json`; a file that cannot be read has
    `error` set and the other keys null."""

    path: str = Field(description="The file name as uploaded.")
    label: str | None = Field(description="The class, or 'unknown' for an image below the unknown threshold "
                                          "(multi-label: the labels carried, joined by ';').")
    probability: float | None = Field(description="Calibrated probability of best_label.")
    best_label: str | None = Field(description="The most probable known class, also when label is 'unknown'.")
    score: float | None = Field(description="In-distribution score: higher is more like the training images.")
    unknown: bool | None = Field(description="Whether the image is answered as unknown: it scored below the "
                                             "model's unknown threshold (GET /model) with unknown=on; always false "
                                             "with unknown=off, where score and the threshold still tell.")
    top: list[Ranked] = Field(description="The top_k classes, most probable first.")
    error: str | None = Field(description="Why the file could not be used, or null.")
    labels: list[Ranked] | None = Field(None, description="Multi-label runs: every label at or above its threshold.")


class PredictResponse(BaseModel):
    model: str = Field(description="The architecture that answered.")
    predictions: list[PredictionEntry] = Field(description="One entry per uploaded file, in upload order.")


class ErrorResponse(BaseModel):
    error: str = Field(description="One line: the argument, what is allowed, the value received.")
    status: int


class NoneUsableResponse(ErrorResponse, PredictResponse):
    """422: not one uploaded file could be used; each entry says why, as in a 200's."""


# What /predict's query parameters take. The route reads them from the query string itself (a bad value gets the
# API's own 400, and FastAPI's parameter solving with its encoding of the answer cost about 90 us of CPU a request),
# so they are described here, typed as they
# are read: declared as Query(str) they were "a string or null", and generated clients typed top_k a str
PARAMETER_SCHEMAS: dict[str, tuple[dict[str, Any], str]] = {
    "top_k": ({"type": "integer", "minimum": 1, "default": 3}, TOP_K),
    "unknown": ({"type": "string", "enum": ["on", "off", "true", "false", "1", "0"]}, UNKNOWN),  # parse_switch's
    "threshold": ({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, THRESHOLD),
}


def predict_openapi() -> dict[str, Any]:
    """The `openapi_extra` of POST /predict: its query parameters and multipart request body."""
    parameters = [{"name": name, "in": "query", "required": False, "description": description,
                   "schema": dict(schema, title=name.replace("_", " ").title())}
                  for name, (schema, description) in PARAMETER_SCHEMAS.items()]
    return {"parameters": parameters, "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["files"],
        "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"},
                                 "description": "One or more images (PNG, JPEG, ...), each as a file part "
                                                "named files."}}}}}}}


PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "A bad request as a whole (no file, a bad parameter)."},
    413: {"model": ErrorResponse, "description": "Too many files or too large a body."},
    415: {"model": ErrorResponse, "description": "Not multipart/form-data."},
    422: {"model": NoneUsableResponse, "description": "No file could be used as an image: the error, and one "
                                                      "entry per file with its reason."},
    503: {"model": ErrorResponse, "description": "Too many requests in progress: retry after the Retry-After "
                                                 "header's seconds."},
    # any other refusal has the same body
    "4XX": {"model": ErrorResponse, "description": "Any other refused request."},
}
