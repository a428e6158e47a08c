"""What a job is made from: the engines and their settings, the models, the library's images, and
PNG Info (the settings a dropped picture carries)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, HTTPException, UploadFile
from fastapi.responses import FileResponse

from brushwork.errors import BrushworkError
from brushwork.studio.engines import available_engines
from brushwork.studio.library import add_model, list_images, list_models, picture_settings, resolve_image
from brushwork.studio.routes.dependencies import StudioDep, read_upload
from brushwork.studio.schemas import EngineOut, LibraryImage, ModelOut, PngInfoBrushwork, PngInfoOther, errors

router = APIRouter(prefix="/api", tags=["library"])


@router.get("/engines", response_model=list[EngineOut],
            summary="Engines and their parameters (the API's names, the CLI's flags)")  # fmt: skip
def engines():
    return [e.describe() for e in available_engines()]


@router.get("/models", response_model=list[ModelOut], summary="Models the studio can apply (bundled, and DATA/models)")
def models(studio: StudioDep):
    return [{k: v for k, v in m.items() if k != "path"} for m in list_models(studio.config)]


@router.post("/models", status_code=201, response_model=ModelOut, responses=errors(400, 409, 413),
             summary="Add a fast or AdaIN model: its .safetensors and .json")  # fmt: skip
def upload_model(
    studio: StudioDep,
    model: Annotated[UploadFile, File(description="MODEL.safetensors, as 'fast train' or 'adain train' wrote it")],
    description: Annotated[UploadFile, File(description="MODEL.json, the settings written beside it")],
):
    config = studio.config
    weights = read_upload(studio, model, "model")
    try:  # add_model bounds the description (far below the upload limit)
        return add_model(config, weights, description.file.read(config.limits.upload_bytes + 1), model.filename)
    except FileExistsError as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/images", response_model=list[LibraryImage],
            summary="Library images: bundled examples and earlier uploads")  # fmt: skip
def images(studio: StudioDep):
    return [{**item, "url": f"/api/images/{item['ref']}"} for item in list_images(studio.config)]


@router.get("/images/{ref}", response_class=FileResponse,
            responses={200: {"content": {"image/*": {}}, "description": "The image"}, **errors(404)},
            summary="One library image")  # fmt: skip
def library_image(studio: StudioDep, ref: str):
    try:
        path = resolve_image(studio.config, ref)
    except BrushworkError as exc:
        raise HTTPException(404, str(exc)) from None
    return FileResponse(path)


@router.post("/png-info", response_model=PngInfoBrushwork | PngInfoOther, responses=errors(400, 413),
             summary="PNG Info: how a picture was made, from its own metadata (nothing is kept)")  # fmt: skip
def png_info(
    studio: StudioDep,
    image: Annotated[UploadFile, File(description="a brushwork output, or another tool's PNG")],
):
    return picture_settings(studio.config, read_upload(studio, image, "image"), image.filename)
