from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PredictRequest(_message.Message):
    __slots__ = ("features", "model_type")
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedScalarFieldContainer[float]
    model_type: str
    def __init__(self, features: _Optional[_Iterable[float]] = ..., model_type: _Optional[str] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("probabilities", "value", "best_move")
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    BEST_MOVE_FIELD_NUMBER: _ClassVar[int]
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    value: float
    best_move: int
    def __init__(self, probabilities: _Optional[_Iterable[float]] = ..., value: _Optional[float] = ..., best_move: _Optional[int] = ...) -> None: ...

class InputFeatures(_message.Message):
    __slots__ = ("features",)
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    features: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, features: _Optional[_Iterable[float]] = ...) -> None: ...

class BatchPredictRequest(_message.Message):
    __slots__ = ("inputs", "model_type")
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    inputs: _containers.RepeatedCompositeFieldContainer[InputFeatures]
    model_type: str
    def __init__(self, inputs: _Optional[_Iterable[_Union[InputFeatures, _Mapping]]] = ..., model_type: _Optional[str] = ...) -> None: ...

class BatchPredictResponse(_message.Message):
    __slots__ = ("outputs",)
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[PredictResponse]
    def __init__(self, outputs: _Optional[_Iterable[_Union[PredictResponse, _Mapping]]] = ...) -> None: ...

class ModelInfoRequest(_message.Message):
    __slots__ = ("model_type",)
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    model_type: str
    def __init__(self, model_type: _Optional[str] = ...) -> None: ...

class ModelInfoResponse(_message.Message):
    __slots__ = ("input_size", "hidden_size", "output_size", "device", "framework")
    INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    FRAMEWORK_FIELD_NUMBER: _ClassVar[int]
    input_size: int
    hidden_size: int
    output_size: int
    device: str
    framework: str
    def __init__(self, input_size: _Optional[int] = ..., hidden_size: _Optional[int] = ..., output_size: _Optional[int] = ..., device: _Optional[str] = ..., framework: _Optional[str] = ...) -> None: ...
