//! Devices as Python sees them: the `DLDeviceType` IntEnum and `__dlpack_device__` tuples.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;

/// The `dlbridge.DLDeviceType` IntEnum and its CPU member (cached for `__dlpack_device__`).
struct DeviceEnum {
    class: Py<PyAny>,
    cpu: Py<PyAny>,
}

static DEVICE_ENUM: PyOnceLock<DeviceEnum> = PyOnceLock::new();

fn device_enum(py: Python<'_>) -> PyResult<&DeviceEnum> {
    DEVICE_ENUM.get_or_try_init(py, || {
        let members: Vec<(&str, i32)> = (1..=18)
            .filter_map(|n| crate::DeviceType(n).name().map(|name| (name, n)))
            .collect();
        let class = py
            .import("enum")?
            .getattr("IntEnum")?
            .call1(("DLDeviceType", members))?;
        class.setattr("__module__", "dlbridge")?;
        let cpu = class.call1((1,))?.unbind();
        Ok::<_, PyErr>(DeviceEnum {
            class: class.unbind(),
            cpu,
        })
    })
}

/// `(DLDeviceType member, id)` for `__dlpack_device__`.
pub(crate) fn device_tuple<'py>(
    py: Python<'py>,
    device: crate::Device,
) -> PyResult<Bound<'py, PyTuple>> {
    let e = device_enum(py)?;
    let kind = if device.kind == crate::DeviceType::CPU {
        e.cpu.bind(py).clone()
    } else {
        match e.class.bind(py).call1((device.kind.0,)) {
            Ok(member) => member,
            Err(_) => device.kind.0.into_pyobject(py)?.into_any(),
        }
    };
    PyTuple::new(py, [kind, device.id.into_pyobject(py)?.into_any()])
}

/// The `DLDeviceType` `IntEnum` (`kDLCPU = 1`, `kDLCUDA = 2`, ...) that `__dlpack_device__` of
/// this crate's tensors returns members of; the `dlbridge` module exports it as
/// `dlbridge.DLDeviceType`.
pub fn dl_device_type(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    Ok(device_enum(py)?.class.bind(py).clone())
}
